package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/sandbox/cni"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// fakeNetwork hands out addresses and remembers which pods hold one.
type fakeNetwork struct {
	mu        sync.Mutex
	attached  map[string]bool
	setups    int
	teardowns int
	failSetup error
}

func (f *fakeNetwork) Setup(_ context.Context, p cni.Pod) (cni.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setups++
	if f.failSetup != nil {
		return cni.Result{}, f.failSetup
	}
	if !nsfs.Pinned(p.NetNS) {
		return cni.Result{}, fmt.Errorf("netns %s is not pinned", p.NetNS)
	}
	f.attached[p.ID] = true
	return cni.Result{IPs: []netip.Addr{netip.MustParseAddr("10.88.0.7"), netip.MustParseAddr("fd00::7")}}, nil
}

func (f *fakeNetwork) Teardown(_ context.Context, p cni.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.teardowns++
	delete(f.attached, p.ID)
	return nil
}

// hooks counts AfterSetup and BeforeTeardown calls; live is the number of
// pods AfterSetup started and BeforeTeardown has not stopped.
type hooks struct {
	mu   sync.Mutex
	live map[string]bool
	fail error
	// tornDownAs is the state of each pod BeforeTeardown last saw.
	tornDownAs map[string]State
}

func (h *hooks) after(_ context.Context, p *Pod) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return h.fail
	}
	h.live[p.ID] = true
	return nil
}

func (h *hooks) before(_ context.Context, p *Pod) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.live, p.ID)
	h.tornDownAs[p.ID] = p.State
	return nil
}

type env struct {
	m        *Manager
	net      *fakeNetwork
	hooks    *hooks
	stateDir string
	parent   string // the test's cgroup parent
	cg       cgroups.Manager
}

// newEnv makes a Manager with its own store, state dir and cgroup parent;
// cleanup removes the pods it left and the cgroup parent.
func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		testutil.SkipOrFail(t, "no usable cgroup hierarchy: "+err.Error())
	}
	root := t.TempDir()
	store, err := OpenStore(filepath.Join(root, "pods"))
	if err != nil {
		t.Fatal(err)
	}
	hostFiles := t.TempDir()
	os.WriteFile(filepath.Join(hostFiles, "resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644)
	os.WriteFile(filepath.Join(hostFiles, "hosts"), []byte("127.0.0.1 localhost node\n"), 0o644)
	e := &env{
		net: &fakeNetwork{attached: map[string]bool{}}, hooks: &hooks{live: map[string]bool{}, tornDownAs: map[string]State{}},
		stateDir: filepath.Join(root, "state"), parent: "/crib-sandbox-test-" + newID(t)[:12], cg: cg,
	}
	e.m = &Manager{
		Store: store, StateDir: e.stateDir, Cgroups: CgroupsOf(cg), Network: e.net,
		HostResolvConf: filepath.Join(hostFiles, "resolv.conf"), HostHosts: filepath.Join(hostFiles, "hosts"),
		AfterSetup: e.hooks.after, BeforeTeardown: e.hooks.before,
	}
	t.Cleanup(func() {
		for _, p := range store.List(Filter{}) {
			if err := e.m.Remove(context.Background(), p.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if err := cg.Remove(e.parent); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		cg.Close()
	})
	return e
}

func (e *env) config(t *testing.T) Config {
	return Config{
		ID: newID(t), Name: "web", Namespace: "default", UID: "uid-1", Attempt: 0,
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"x": " kept "},
		Hostname: "web-0", CgroupParent: e.parent, ShmSize: 16 << 20,
		DNS:          DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
		HostAliases:  []HostAlias{{IP: "192.0.2.1", Hostnames: []string{"db"}}},
		PortMappings: []cni.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
		Sysctls:      map[string]string{"net/ipv4/ip_unprivileged_port_start": "0"},
	}
}

// cgroupExists reports whether path exists in any mounted hierarchy.
func cgroupExists(path string) bool {
	matches, _ := filepath.Glob("/sys/fs/cgroup/*" + path)
	_, err := os.Stat("/sys/fs/cgroup" + path)
	return len(matches) > 0 || err == nil
}

// checkGone asserts that nothing of pod id is left: record, directory,
// mounts, cgroup, network attachment, hook state.
func (e *env) checkGone(t *testing.T, id string) {
	t.Helper()
	if _, err := e.m.Store.Get(id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("record of %s left: %v", id, err)
	}
	if n := testutil.MountsUnder(t, filepath.Join(e.stateDir, id)); n != 0 {
		t.Errorf("%d mounts of pod %s left", n, id)
	}
	if _, err := os.Stat(filepath.Join(e.stateDir, id)); !os.IsNotExist(err) {
		t.Errorf("pod directory left: %v", err)
	}
	if cgroupExists(e.parent + "/" + id) {
		t.Errorf("cgroup %s/%s left", e.parent, id)
	}
	if e.net.attached[id] {
		t.Error("network still attached")
	}
	if e.hooks.live[id] {
		t.Error("AfterSetup's work not undone")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestManagerLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.config(t)
	c.SharePID = true // a pause process, so a cgroup of the pod's own
	p, err := e.m.Run(ctx, c)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if p.State != StateReady || p.Network != NetworkAttached || !e.net.attached[p.ID] || !e.hooks.live[p.ID] {
		t.Fatalf("after Run: state %s, network %s, attached %v, hook %v", p.State, p.Network, e.net.attached[p.ID], e.hooks.live[p.ID])
	}
	for _, ns := range []string{p.NetNS, p.IPCNS, p.UTSNS} {
		if !nsfs.Pinned(ns) {
			t.Errorf("%q not pinned", ns)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p.ShmPath, &st); err != nil || st.Type != unix.TMPFS_MAGIC || st.Blocks*uint64(st.Bsize) != 16<<20 {
		t.Errorf("shm at %s: %+v, %v", p.ShmPath, st, err)
	}
	if !cgroupExists(p.Cgroup) || p.Cgroup != e.parent+"/"+p.ID {
		t.Errorf("pod cgroup %s missing", p.Cgroup)
	}
	if got := readFile(t, p.HostnamePath); got != "web-0\n" {
		t.Errorf("hostname file %q", got)
	}
	if got := readFile(t, p.ResolvPath); got != "search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n" {
		t.Errorf("resolv.conf %q", got)
	}
	if got := readFile(t, p.HostsPath); !strings.HasSuffix(got, "10.88.0.7\tweb-0\nfd00::7\tweb-0\n# Entries added by HostAliases.\n192.0.2.1\tdb\n") {
		t.Errorf("hosts %q", got)
	}
	if p.Sysctls["net.ipv4.ip_unprivileged_port_start"] != "0" || p.Annotations["x"] != " kept " {
		t.Errorf("sysctls %v, annotations %v", p.Sysctls, p.Annotations)
	}
	if _, err := e.m.Run(ctx, c); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second Run with the same id: %v, want AlreadyExists", err)
	}
	dup := c
	dup.ID = newID(t)
	if _, err := e.m.Run(ctx, dup); !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), p.ID) {
		t.Errorf("Run with the same name and attempt: %v, want AlreadyExists naming %s", err, p.ID)
	}
	e.checkGone(t, dup.ID)

	for i := range 2 {
		if err := e.m.Stop(ctx, p.ID[:12]); err != nil {
			t.Fatalf("Stop #%d: %v", i+1, err)
		}
	}
	if e.net.teardowns != 1 {
		t.Errorf("CNI DEL ran %d times for two Stops, want 1", e.net.teardowns)
	}
	reopened, err := OpenStore(filepath.Join(filepath.Dir(e.stateDir), "pods"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := reopened.Get(p.ID); err != nil || got.State != StateNotReady || got.Network != NetworkDetached {
		t.Fatalf("after Stop: %+v, %v", got, err)
	}
	if !nsfs.Pinned(p.NetNS) {
		t.Error("Stop unpinned the namespaces; Remove does that")
	}

	if err := e.m.Remove(ctx, p.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	e.checkGone(t, p.ID)
	if n := testutil.MountsUnder(t, e.stateDir); n != 0 {
		t.Errorf("%d mounts left under %s", n, e.stateDir)
	}
	if err := e.m.Remove(ctx, p.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Remove: %v, want NotFound (cri/ answers success)", err)
	}
	if err := e.m.Stop(ctx, p.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Stop of a removed pod: %v, want NotFound", err)
	}
}

// A pod without a pause process (pid mode CONTAINER, the kubelet's
// default) gets no cgroup of its own: its containers' cgroups go straight
// under the parent. A parent crib had to make is still made, and removed
// with the last pod under it.
func TestPodCgroupOnlyWithPause(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, err := e.m.Run(ctx, e.config(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Cgroup != "" || cgroupExists(e.parent+"/"+p.ID) {
		t.Errorf("pod without a pause: cgroup %q made", p.Cgroup)
	}
	if !cgroupExists(e.parent) || !slices.Equal(p.CreatedCgroups, []string{e.parent}) {
		t.Errorf("parent %s: exists %v, recorded as made %v", e.parent, cgroupExists(e.parent), p.CreatedCgroups)
	}
	shared := e.config(t)
	shared.Name, shared.SharePID = "shared", true
	q, err := e.m.Run(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	if q.Cgroup != e.parent+"/"+q.ID || !cgroupExists(q.Cgroup) || len(q.CreatedCgroups) != 0 {
		t.Errorf("pod with a pause: cgroup %q (exists %v), made %v", q.Cgroup, cgroupExists(q.Cgroup), q.CreatedCgroups)
	}
	if err := e.m.Remove(ctx, q.ID); err != nil {
		t.Fatal(err)
	}
	e.checkGone(t, q.ID)
	if !cgroupExists(e.parent) {
		t.Error("the parent went with a pod that did not make it")
	}
	if err := e.m.Remove(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	e.checkGone(t, p.ID)
	if cgroupExists(e.parent) {
		t.Errorf("parent %s left", e.parent)
	}
}

// A pod recorded by an older crib, which gave every pod a cgroup of its
// own, still has it removed with the pod.
func TestPodCgroupOfOlderRecordRemoved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, err := e.m.Run(ctx, e.config(t))
	if err != nil {
		t.Fatal(err)
	}
	p.Cgroup = e.parent + "/" + p.ID
	if err := e.m.Cgroups.Create(p.Cgroup); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Store.Update(p); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	e.checkGone(t, p.ID)
}

func TestManagerRemoveReadyPod(t *testing.T) {
	e := newEnv(t)
	p, err := e.m.Run(context.Background(), e.config(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(context.Background(), p.ID); err != nil {
		t.Fatalf("Remove without Stop: %v", err)
	}
	if e.net.teardowns != 1 {
		t.Errorf("Remove of a READY pod ran DEL %d times, want 1", e.net.teardowns)
	}
	e.checkGone(t, p.ID)
}

func TestManagerHostNamespaces(t *testing.T) {
	e := newEnv(t)
	c := e.config(t)
	c.HostNetwork, c.HostIPC, c.HostPID, c.Privileged = true, true, true, true
	c.Sysctls = nil
	p, err := e.m.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	// What the pod decided is in its record, for CreateContainer.
	if rec, err := e.m.Get(p.ID); err != nil || !rec.HostPID || !rec.Privileged || rec.SecurityUnrecorded {
		t.Errorf("record of a host-pid privileged pod: %+v, %v", rec, err)
	}
	if p.NetNS != "" || p.IPCNS != "" || p.UTSNS != "" || p.ShmPath != "" || p.Network != NetworkHost || len(p.IPs) != 0 {
		t.Errorf("host-namespace pod: %+v", p)
	}
	if e.net.setups != 0 {
		t.Error("CNI called for a host-network pod")
	}
	if n := testutil.MountsUnder(t, e.stateDir); n != 0 {
		t.Errorf("host-namespace pod has %d mounts", n)
	}
	if got := readFile(t, p.HostsPath); got != "127.0.0.1 localhost node\n# Entries added by HostAliases.\n192.0.2.1\tdb\n" {
		t.Errorf("hosts %q", got)
	}
	if err := e.m.Stop(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}
	e.checkGone(t, p.ID)
}

func TestManagerRollback(t *testing.T) {
	e := newEnv(t)
	for _, s := range e.m.steps() {
		t.Run(s.name, func(t *testing.T) {
			injected := errors.New("injected failure")
			e.m.failAfter = func(step string) error {
				if step == s.name {
					return injected
				}
				return nil
			}
			defer func() { e.m.failAfter = nil }()
			c := e.config(t)
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the rollback must not depend on the caller's context
			_, err := e.m.Run(ctx, c)
			if !errors.Is(err, injected) || !strings.Contains(err.Error(), s.name) {
				t.Fatalf("Run = %v, want the injected failure after %s", err, s.name)
			}
			e.checkGone(t, c.ID)
		})
	}
}

func TestManagerStepFailures(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	e.net.failSetup = errors.New("plugin bridge: boom")
	c := e.config(t)
	if _, err := e.m.Run(ctx, c); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Run with failing CNI = %v", err)
	}
	e.checkGone(t, c.ID)
	e.net.failSetup = nil

	e.hooks.fail = errors.New("shim: no")
	c = e.config(t)
	if _, err := e.m.Run(ctx, c); err == nil || !strings.Contains(err.Error(), "shim: no") {
		t.Errorf("Run with failing hook = %v", err)
	}
	e.checkGone(t, c.ID)
	e.hooks.fail = nil

	e.m.HostResolvConf = filepath.Join(t.TempDir(), "missing")
	c = e.config(t)
	c.DNS = DNSConfig{}
	if _, err := e.m.Run(ctx, c); err == nil {
		t.Error("Run without the host's resolv.conf succeeded")
	}
	e.checkGone(t, c.ID)
}

func TestManagerValidation(t *testing.T) {
	m := &Manager{}
	good := Config{ID: strings.Repeat("a", 64), Name: "n", Namespace: "ns", UID: "u"}
	for name, mutate := range map[string]func(*Config){
		"short id":            func(c *Config) { c.ID = "abc" },
		"upper-case id":       func(c *Config) { c.ID = strings.Repeat("A", 64) },
		"no name":             func(c *Config) { c.Name = "" },
		"bad hostname":        func(c *Config) { c.Hostname = "-x" },
		"bad dns":             func(c *Config) { c.DNS.Servers = []string{"x"} },
		"bad alias":           func(c *Config) { c.HostAliases = []HostAlias{{IP: "x"}} },
		"negative shm":        func(c *Config) { c.ShmSize = -1 },
		"relative cgroup":     func(c *Config) { c.CgroupParent = "kubepods" },
		"unclean cgroup":      func(c *Config) { c.CgroupParent = "/a/../b" },
		"unsafe sysctl":       func(c *Config) { c.Sysctls = map[string]string{"kernel.panic": "1"} },
		"net sysctl on host":  func(c *Config) { c.HostNetwork = true; c.Sysctls = map[string]string{"net.core.somaxconn": "1"} },
		"relative log dir":    func(c *Config) { c.LogDir = "logs/pod" },
		"unclean log dir":     func(c *Config) { c.LogDir = "/var/log/pods/../../etc" },
		"shared and host pid": func(c *Config) { c.SharePID, c.HostPID = true, true },
		"dns zone":            func(c *Config) { c.DNS.Servers = []string{"fe80::1%x\nnameserver 6.6.6.6"} },
	} {
		c := good
		mutate(&c)
		if _, err := m.Run(context.Background(), c); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Run = %v, want InvalidArgument", name, err)
		}
	}
	if _, err := m.Run(context.Background(), good); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Run without a network: %v, want FailedPrecondition", err)
	}
}

func TestManagerRecover(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	creating := samplePod(newID(t), "creating", nil)
	lost := samplePod(newID(t), "lost", nil) // its pins do not exist
	host := samplePod(newID(t), "host", nil)
	host.NetNS, host.IPCNS, host.UTSNS, host.Network = "", "", "", NetworkHost
	for _, p := range []*Pod{creating, lost, host} {
		if err := s.Create(p); err != nil {
			t.Fatal(err)
		}
	}
	lost.State, host.State = StateReady, StateReady
	s.Update(lost)
	s.Update(host)
	if err := (&Manager{Store: s}).Recover(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[*Pod]State{creating: StateNotReady, lost: StateNotReady, host: StateReady} {
		if got, _ := s.Get(p.ID); got.State != want {
			t.Errorf("%s: %s after Recover, want %s", p.Name, got.State, want)
		}
	}
}

// TestManagerSysctlsCheckedAtRun: a namespaced key this kernel lacks, or a
// value it refuses, fails RunPodSandbox naming the key and leaves nothing;
// good ones are set in the pod's namespaces, not the host's.
func TestManagerSysctlsCheckedAtRun(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for key, val := range map[string]string{
		"net.ipv4.no_such_key_crib": "1",
		"net.ipv4.ip_forward":       "not-a-number",
		"kernel.shm_rmid_forced":    "7",
	} {
		c := e.config(t)
		c.Sysctls = map[string]string{key: val}
		_, err := e.m.Run(ctx, c)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(fmt.Sprint(err), key) {
			t.Errorf("sysctl %s=%s: Run = %v, want InvalidArgument naming the key", key, val, err)
		}
		e.checkGone(t, c.ID)
	}
	c := e.config(t)
	c.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1"}
	p, err := e.m.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	read := func(ns string, kind nsfs.Kind, key string) (v string) {
		err := nsfs.Do(ns, kind, func() error {
			b, err := os.ReadFile(key)
			v = strings.TrimSpace(string(b))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := read(p.NetNS, nsfs.Net, "/proc/sys/net/ipv4/ip_unprivileged_port_start"); v != "0" {
		t.Errorf("pod's ip_unprivileged_port_start = %s", v)
	}
	if v := read(p.IPCNS, nsfs.IPC, "/proc/sys/kernel/shm_rmid_forced"); v != "1" {
		t.Errorf("pod's shm_rmid_forced = %s", v)
	}
}

// TestBeforeReadyHook: the hook (NRI's RunPodSandbox) sees the pod whole
// but still CREATING; its failure fails the run and leaves nothing; a
// failure after it runs AfterUnready.
func TestBeforeReadyHook(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var seen []State
	var undone []string
	var fail error
	e.m.BeforeReady = func(_ context.Context, p *Pod) error {
		seen = append(seen, p.State)
		if _, err := os.Stat(p.HostsPath); err != nil {
			t.Errorf("BeforeReady before the pod's files: %v", err)
		}
		return fail
	}
	e.m.AfterUnready = func(_ context.Context, p *Pod) error { undone = append(undone, p.ID); return nil }

	c := e.config(t)
	l := int64(1 << 20)
	c.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &l}}
	p, err := e.m.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != StateCreating || p.State != StateReady || len(undone) != 0 {
		t.Errorf("hook saw %v, pod %v, undone %v; want one CREATING call, a READY pod, no undo", seen, p.State, undone)
	}
	if got, err := e.m.Store.Get(p.ID); err != nil || got.Resources == nil || *got.Resources.Memory.Limit != l {
		t.Errorf("recorded resources %v, %v", got.Resources, err)
	}
	if err := e.m.UpdateResources(ctx, p.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.m.Store.Get(p.ID); got.Resources != nil {
		t.Errorf("resources after an update to none: %v", got.Resources)
	}
	if err := e.m.Remove(ctx, p.ID); err != nil {
		t.Fatal(err)
	}

	fail = errors.New("plugin says no")
	c = e.config(t)
	if _, err := e.m.Run(ctx, c); err == nil || !strings.Contains(err.Error(), "plugin says no") {
		t.Errorf("Run with a refusing hook = %v", err)
	}
	e.checkGone(t, c.ID)
	if len(undone) != 0 {
		t.Errorf("AfterUnready ran for a hook that failed (it undoes itself): %v", undone)
	}
	fail = nil

	e.m.failAfter = func(step string) error {
		if step == "before-ready hook" {
			return errors.New("injected")
		}
		return nil
	}
	defer func() { e.m.failAfter = nil }()
	c = e.config(t)
	if _, err := e.m.Run(ctx, c); err == nil {
		t.Fatal("Run succeeded")
	}
	e.checkGone(t, c.ID)
	if len(undone) != 1 || undone[0] != c.ID {
		t.Errorf("AfterUnready ran for %v, want %s", undone, c.ID)
	}
}
