package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// These are the regression tests of issue 13's fourth hole: CreateContainer
// took the pod's decisions from the request's copy of the pod's config, DNS
// values could add lines to resolv.conf, log_path could leave the log
// directory and Bidirectional propagation was open to any container.

// tampered returns a copy of the pod's config as a hostile client would
// send it with CreateContainer: a privileged pod on the host's namespaces,
// with another log directory, hostname and sysctl.
func tampered(pod *criapi.PodSandboxConfig, logDir string) *criapi.PodSandboxConfig {
	c := proto.Clone(pod).(*criapi.PodSandboxConfig)
	c.Hostname = "tampered"
	c.LogDirectory = logDir
	c.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1"}
	c.Linux.SecurityContext.Privileged = true
	c.Linux.SecurityContext.NamespaceOptions = &criapi.NamespaceOption{
		Network: criapi.NamespaceMode_NODE, Pid: criapi.NamespaceMode_NODE, Ipc: criapi.NamespaceMode_NODE,
	}
	return c
}

// TestCreateContainerUsesThePodRecord: a request that claims the pod is
// privileged and on the host's namespaces gets neither a privileged
// container nor a host namespace; the container gets the pod's hostname,
// sysctls and log directory, not the request's.
func TestCreateContainerUsesThePodRecord(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "record", criapi.NamespaceMode_CONTAINER)
	evilLogs := t.TempDir()
	bad := tampered(pod, evilLogs)
	// Only the privileged flag changed, so nothing else in the request
	// stops the container.
	privOnly := proto.Clone(pod).(*criapi.PodSandboxConfig)
	privOnly.Linux.SecurityContext.Privileged = true
	create := func(name string, sc *criapi.LinuxContainerSecurityContext) (string, error) {
		sandboxConfig := bad
		if sc.GetPrivileged() {
			sandboxConfig = privOnly
		}
		resp, err := w.c.RawRt.CreateContainer(ctx, &criapi.CreateContainerRequest{
			PodSandboxId: podID, SandboxConfig: sandboxConfig,
			Config: &criapi.ContainerConfig{
				Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: w.image},
				Command: []string{"sleep", "3600"}, LogPath: name + "/0.log",
				Linux: &criapi.LinuxContainerConfig{SecurityContext: sc},
			},
		})
		return resp.GetContainerId(), err
	}

	// Refused, or it would run with every capability: the pod is not
	// privileged, whatever the request says.
	if id, err := create("priv", &criapi.LinuxContainerSecurityContext{Privileged: true}); err == nil {
		t.Errorf("privileged container %s created in an unprivileged pod", id)
		if err := w.c.Runtime.StartContainer(ctx, id); err == nil {
			st, _ := w.execOut(t, id, "cat /proc/self/status")
			t.Errorf("and it runs with CapEff %s", capLine(st, "CapEff"))
		}
	} else if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "privileged") {
		t.Errorf("privileged container in an unprivileged pod: %v, want InvalidArgument naming privileged", err)
	}
	// The host's namespaces are the pod's to ask for, not the container's.
	for _, ns := range []string{"network", "ipc", "pid"} {
		opts := &criapi.NamespaceOption{Network: criapi.NamespaceMode_POD, Ipc: criapi.NamespaceMode_POD, Pid: criapi.NamespaceMode_CONTAINER}
		switch ns {
		case "network":
			opts.Network = criapi.NamespaceMode_NODE
		case "ipc":
			opts.Ipc = criapi.NamespaceMode_NODE
		case "pid":
			opts.Pid = criapi.NamespaceMode_NODE
		}
		if id, err := create("host"+ns, &criapi.LinuxContainerSecurityContext{NamespaceOptions: opts}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), ns) {
			t.Errorf("host %s namespace in a pod without it: %s, %v; want InvalidArgument naming %s", ns, id, err, ns)
		}
	}

	// A plain container in the tampered request: the pod's decisions.
	id, err := create("plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	daemon, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.d.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := w.execOut(t, id, "cat /proc/self/status")
	if got := capLine(st, "CapEff"); got == capLine(string(daemon), "CapBnd") || got == "" {
		t.Errorf("CapEff %q: want the default set, not the daemon's %s", got, capLine(string(daemon), "CapBnd"))
	}
	if out, _ := w.execOut(t, id, `echo "$HOSTNAME $(hostname) $(cat /proc/sys/kernel/shm_rmid_forced)"`); out != "record record 0\n" {
		t.Errorf("hostname, HOSTNAME and kernel.shm_rmid_forced = %q, want the pod's: \"record record 0\"", out)
	}
	if ents, _ := os.ReadDir(evilLogs); len(ents) != 0 {
		t.Errorf("the request's log directory got %s", ents[0].Name())
	}
	if _, err := os.Stat(filepath.Join(pod.LogDirectory, "plain", "0.log")); err != nil {
		t.Errorf("log file in the pod's log directory: %v", err)
	}
	// The pid namespace is the container's own, not the host's.
	if out, _ := w.execOut(t, id, "cat /proc/1/cmdline"); !strings.HasPrefix(out, "sleep") {
		t.Errorf("pid 1 in the container is %q, want its sleep", out)
	}
}

// TestPrivilegedPodStillGetsPrivilegedContainers: the record keeps a
// privileged pod's decision, so a request whose copy says otherwise still
// gets the privileged container the pod allows.
func TestPrivilegedPodStillGetsPrivilegedContainers(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("privrec", criapi.NamespaceMode_CONTAINER)
	pod.Linux.SecurityContext.Privileged = true
	podID := w.run(t, pod)
	copied := proto.Clone(pod).(*criapi.PodSandboxConfig)
	copied.Linux.SecurityContext.Privileged = false
	resp, err := w.c.RawRt.CreateContainer(ctx, &criapi.CreateContainerRequest{
		PodSandboxId: podID, SandboxConfig: copied,
		Config: &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: "priv"}, Image: &criapi.ImageSpec{Image: w.image},
			Command: []string{"sleep", "3600"},
			Linux:   &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{Privileged: true}},
		},
	})
	if err != nil {
		t.Fatalf("privileged container in a privileged pod: %v", err)
	}
	if err := w.c.Runtime.StartContainer(ctx, resp.ContainerId); err != nil {
		t.Fatal(err)
	}
}

// TestDNSInjectionRefused: a DNS server with an IPv6 zone holding a
// newline, or a search or option with a control character, is refused by
// RunPodSandbox naming the value, instead of adding lines to resolv.conf.
func TestDNSInjectionRefused(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	for _, dns := range []*criapi.DNSConfig{
		{Servers: []string{"fe80::1%x\nnameserver 6.6.6.6"}},
		{Servers: []string{"fe80::1%eth0"}},
		{Searches: []string{"a\x0bb.local"}},
		{Options: []string{"ndots:5\x0crotate"}},
	} {
		pod := w.podConfig("dns", criapi.NamespaceMode_CONTAINER)
		pod.DnsConfig = dns
		id, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
		if err == nil {
			_ = w.c.Runtime.StopPodSandbox(ctx, id)
			_ = w.c.Runtime.RemovePodSandbox(ctx, id)
			t.Errorf("pod with DNS %v ran", dns)
			continue
		}
		value := strings.Join(append(append(dns.Servers, dns.Searches...), dns.Options...), "")
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), fmt.Sprintf("%q", value)) {
			t.Errorf("DNS %q: %v, want InvalidArgument naming the value", value, err)
		}
	}
}

// TestLogPathStaysInLogDir: a log_path that leaves the log directory is
// refused, and a symlink below the directory is not followed out of it.
func TestLogPathStaysInLogDir(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "logs", criapi.NamespaceMode_CONTAINER)
	cfg := func(name, logPath string) *criapi.ContainerConfig {
		return &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: w.image},
			Command: []string{"echo", "escaped"}, LogPath: logPath,
		}
	}
	outside := t.TempDir()
	for i, lp := range []string{"../../x.log", "a/../../x.log", filepath.Join(outside, "x.log")} {
		id, err := w.c.Runtime.CreateContainer(ctx, podID, cfg(fmt.Sprintf("c%d", i), lp), pod)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), lp) {
			t.Errorf("log_path %q: %s, %v; want InvalidArgument naming it", lp, id, err)
		}
	}
	// A container that mounts the log directory could leave a symlink in
	// it; the shim opens the file beneath the directory and refuses it.
	if err := os.MkdirAll(pod.LogDirectory, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(pod.LogDirectory, "link")); err != nil {
		t.Fatal(err)
	}
	id, err := w.c.Runtime.CreateContainer(ctx, podID, cfg("linked", "link/0.log"), pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err == nil {
		t.Error("container whose log path goes through a symlink out of the log directory started")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("the log was written outside the log directory: %s", ents[0].Name())
	}
}

// TestBidirectionalOnlyPrivileged: Bidirectional propagation would let an
// unprivileged container's mounts reach the host's namespace.
func TestBidirectionalOnlyPrivileged(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "bidi", criapi.NamespaceMode_CONTAINER)
	host := t.TempDir()
	id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "bidi"}, Image: &criapi.ImageSpec{Image: w.image},
		Command: []string{"sleep", "3600"},
		Mounts:  []*criapi.Mount{{ContainerPath: "/shared", HostPath: host, Propagation: criapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}},
	}, pod)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "Bidirectional") {
		t.Errorf("Bidirectional mount in an unprivileged container: %s, %v; want InvalidArgument", id, err)
	}
}

// execOut runs sh -c cmd in the container and returns its stdout.
func (w *podWorld) execOut(t *testing.T, id, cmd string) (string, error) {
	t.Helper()
	resp, err := w.c.RawRt.ExecSync(context.Background(), &criapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", cmd}, Timeout: 10})
	if err != nil {
		t.Errorf("exec %q: %v", cmd, err)
		return "", err
	}
	return string(resp.Stdout), nil
}

// TestPodFromVersion1RecordKeepsWorking: a pod created by the version
// before the record kept its privileged flag (a version 1 record) still
// gets the privileged container its kubelet asks for after the upgrade,
// and its containers still log into its log directory.
func TestPodFromVersion1RecordKeepsWorking(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("upgraded", criapi.NamespaceMode_CONTAINER)
	pod.Linux.SecurityContext.Privileged = true
	podID := w.run(t, pod)
	w.d.Stop()
	// The record as version 1 wrote it: no privileged, host_pid or
	// security_unrecorded.
	path := filepath.Join(w.e.Root, "pods", podID+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec["version"] != float64(2) || rec["privileged"] != true {
		t.Fatalf("record %s: want version 2 keeping privileged", b)
	}
	rec["version"] = 1
	delete(rec, "privileged")
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	w.d = w.e.Start()
	w.c = w.d.Clients()

	id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "priv"}, Image: &criapi.ImageSpec{Image: w.image},
		Command: []string{"sleep", "3600"}, LogPath: "priv/0.log",
		Linux: &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{Privileged: true}},
	}, pod)
	if err != nil {
		t.Fatalf("privileged container in a privileged pod from a version 1 record: %v", err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	daemon, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.d.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := w.execOut(t, id, "cat /proc/self/status")
	if got, want := capLine(st, "CapEff"), capLine(string(daemon), "CapBnd"); got != want {
		t.Errorf("CapEff %s, want the daemon's bounding set %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(pod.LogDirectory, "priv", "0.log")); err != nil {
		t.Errorf("log file in the pod's log directory: %v", err)
	}
}
