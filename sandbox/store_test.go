package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"github.com/crib-runtime/crib/internal/statefile"
	"github.com/crib-runtime/crib/sandbox/cni"
)

func newID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func samplePod(id, name string, labels map[string]string) *Pod {
	return &Pod{
		ID: id, Name: name, Namespace: "default", UID: "uid-" + name, Attempt: 1,
		Labels: labels, Annotations: map[string]string{"a/b": "  spaces kept ", "empty": ""},
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), State: StateCreating, Network: NetworkAttached,
		Dir: "/run/crib/pods/" + id, NetNS: "/run/crib/pods/" + id + "/ns/net", IPCNS: "/x/ipc", UTSNS: "/x/uts",
		CgroupParent: "/kubepods", Cgroup: "/kubepods/" + id, IPs: []string{"10.88.0.2", "fd00::2"},
		Hostname: name, HostnamePath: "/h", ResolvPath: "/r", HostsPath: "/hs", ShmPath: "/shm",
		RuntimeHandler: "crib", LogDir: "/var/log/pods/x",
		PortMappings: []cni.PortMapping{{HostPort: 80, ContainerPort: 8080, Protocol: "tcp", HostIP: "127.0.0.1"}},
		Bandwidth:    &cni.Bandwidth{IngressRate: 1e6, EgressBurst: 1e3},
		Sysctls:      map[string]string{"net.core.somaxconn": "1024"},
		Privileged:   true, HostPID: true, Seccomp: "localhost//var/lib/kubelet/seccomp/p.json", SELinux: SELinuxOptions{Type: "spc_t", Level: "s0:c1,c2"},
	}
}

func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := samplePod(newID(t), "web", map[string]string{"app": "web"})
	if err := s.Create(p); err != nil {
		t.Fatal(err)
	}
	p.State = StateReady
	if err := s.Update(p); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("reloaded pod (-want +got):\n%s", diff)
	}
	// Copies are the caller's: changing one does not change the store.
	got.Labels["app"] = "changed"
	if again, _ := s2.Get(p.ID); again.Labels["app"] != "web" {
		t.Error("a returned pod shares its labels map with the store")
	}
	// The state machine: READY cannot go back to CREATING.
	got.State = StateCreating
	if err := s2.Update(got); err == nil {
		t.Error("READY → CREATING accepted")
	}
	if err := s2.Delete(p.ID); err != nil {
		t.Fatal(err)
	}
	if err := s2.Delete(p.ID); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := s2.Get(p.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want NotFound", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left in the store: %v", ents)
	}
	if err := s2.Update(p); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Update of a deleted pod = %v, want NotFound", err)
	}
}

func TestStoreUniqueness(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := samplePod(newID(t), "web", nil)
	if err := s.Create(p); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(p); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("same id: %v, want AlreadyExists", err)
	}
	dup := samplePod(newID(t), "web", nil)
	if err := s.Create(dup); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("same name/namespace/uid/attempt: %v, want AlreadyExists", err)
	}
	dup.Attempt = 2
	if err := s.Create(dup); err != nil {
		t.Errorf("next attempt: %v", err)
	}
}

func TestStoreListAndPrefix(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := samplePod("aa"+newID(t)[2:], "a", map[string]string{"app": "web", "tier": "front"})
	b := samplePod("ab"+newID(t)[2:], "b", map[string]string{"app": "web"})
	c := samplePod("c0"+newID(t)[2:], "c", nil)
	b.CreatedAt = a.CreatedAt.Add(time.Second)
	c.CreatedAt = a.CreatedAt.Add(2 * time.Second)
	for _, p := range []*Pod{c, b, a} {
		if err := s.Create(p); err != nil {
			t.Fatal(err)
		}
	}
	b.State = StateReady
	s.Update(b)
	ids := func(ps []*Pod) (out []string) {
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all, oldest first", Filter{}, []string{"a", "b", "c"}},
		{"id prefix", Filter{IDPrefix: "a"}, []string{"a", "b"}},
		{"state", Filter{States: []State{StateReady}}, []string{"b"}},
		{"states", Filter{States: []State{StateReady, StateCreating}}, []string{"a", "b", "c"}},
		{"one label", Filter{Labels: map[string]string{"app": "web"}}, []string{"a", "b"}},
		{"all labels must match", Filter{Labels: map[string]string{"app": "web", "tier": "front"}}, []string{"a"}},
		{"label value differs", Filter{Labels: map[string]string{"app": "db"}}, nil},
		{"combined", Filter{IDPrefix: "a", States: []State{StateCreating}, Labels: map[string]string{"app": "web"}}, []string{"a"}},
	} {
		if diff := cmp.Diff(tc.want, ids(s.List(tc.f))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	if p, err := s.Get("c"); err != nil || p.ID != c.ID {
		t.Errorf("Get(unique prefix) = %v, %v", p, err)
	}
	if _, err := s.Get("a"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Get(ambiguous prefix) = %v, want InvalidArgument", err)
	}
	if _, err := s.Get("ff"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want NotFound", err)
	}
	if _, err := s.Get(""); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get(\"\") = %v, want NotFound", err)
	}
}

func TestStoreVersions(t *testing.T) {
	dir := t.TempDir()
	id := newID(t)
	if err := statefile.WriteJSON(filepath.Join(dir, id+".json"), map[string]any{"version": 3, "id": id}); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(dir); !errors.Is(err, statefile.ErrVersion) {
		t.Fatalf("OpenStore with a version 3 record = %v, want ErrVersion", err)
	}
	os.WriteFile(filepath.Join(dir, id+".json"), []byte("{"), 0o600)
	if _, err := OpenStore(dir); err == nil {
		t.Fatal("OpenStore with a corrupt record succeeded")
	}
	// A record whose id does not match its file name is refused.
	other := samplePod(newID(t), "x", nil)
	r := toRecord(other)
	statefile.WriteJSON(filepath.Join(dir, id+".json"), &r)
	if _, err := OpenStore(dir); err == nil {
		t.Fatal("OpenStore with a misnamed record succeeded")
	}
	// statefile's leftover temp files are ignored.
	os.Remove(filepath.Join(dir, id+".json"))
	os.WriteFile(filepath.Join(dir, "."+id+".json.tmp-1"), []byte("{"), 0o600)
	if _, err := OpenStore(dir); err != nil {
		t.Fatalf("OpenStore with a temp file: %v", err)
	}
}

// TestStoreLoadsVersion1 loads a record as the version before 2 wrote it:
// the pod keeps working, marked SecurityUnrecorded, and an update writes
// version 2 keeping the mark.
func TestStoreLoadsVersion1(t *testing.T) {
	dir := t.TempDir()
	id := newID(t)
	v1 := `{"version":1,"id":"` + id + `","name":"web","namespace":"default","uid":"u1","attempt":0,
		"created_at":"2026-01-02T03:04:05Z","state":"READY","network":"attached","dir":"/run/crib/pods/` + id + `",
		"net_ns":"/n","ipc_ns":"/i","uts_ns":"/u","hostname":"web","hostname_path":"/h","resolv_path":"/r",
		"hosts_path":"/hs","shm_path":"/shm","log_dir":"/var/log/pods/x","sysctls":{"net.core.somaxconn":"1024"},
		"share_pid":true,"pause_pid":42}`
	if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatalf("OpenStore with a version 1 record: %v", err)
	}
	p, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !p.SecurityUnrecorded || p.Privileged || p.HostPID || p.State != StateReady || p.LogDir != "/var/log/pods/x" ||
		!p.SharePID || p.PausePID != 42 || p.Sysctls["net.core.somaxconn"] != "1024" {
		t.Fatalf("version 1 record loaded as %+v", p)
	}
	p.State = StateNotReady
	if err := s.Update(p); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Version            int  `json:"version"`
		SecurityUnrecorded bool `json:"security_unrecorded"`
	}
	if err := statefile.ReadJSON(filepath.Join(dir, id+".json"), &v); err != nil || v.Version != 2 || !v.SecurityUnrecorded {
		t.Fatalf("updated record = %+v, %v; want version 2, security_unrecorded", v, err)
	}
	s2, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p2, err := s2.Get(id); err != nil || !p2.SecurityUnrecorded || p2.State != StateNotReady {
		t.Fatalf("reloaded = %+v, %v", p2, err)
	}
}

func TestStateTransitions(t *testing.T) {
	for _, tc := range []struct {
		from, to State
		ok       bool
	}{
		{StateCreating, StateReady, true}, {StateCreating, StateNotReady, true},
		{StateReady, StateNotReady, true}, {StateReady, StateReady, true},
		{StateReady, StateCreating, false}, {StateNotReady, StateReady, false}, {StateNotReady, StateCreating, false},
	} {
		if got := tc.from.CanTransition(tc.to); got != tc.ok {
			t.Errorf("%s → %s = %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
	if StateNotReady.String() != "NOTREADY" || State(9).String() != "State(9)" {
		t.Error("State.String")
	}
}

// TestStoreDoesNotWaitForDisk: while one pod's record is being written
// (fsynced), reads, another pod's update and another pod's creation go on;
// the pod being created keeps its id and name taken, and is found once
// written.
func TestStoreDoesNotWaitForDisk(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := samplePod(newID(t), "a", nil)
	if err := s.Create(a); err != nil {
		t.Fatal(err)
	}
	slow := samplePod(newID(t), "slow", nil)
	held, release := make(chan struct{}), make(chan struct{})
	orig := writeRecord
	writeRecord = func(path string, v any) error {
		if filepath.Base(path) == slow.ID+".json" {
			close(held)
			<-release
		}
		return orig(path, v)
	}
	t.Cleanup(func() { writeRecord = orig })
	created := make(chan error, 1)
	go func() { created <- s.Create(slow) }()
	<-held

	others := make(chan error, 1)
	go func() {
		if _, err := s.Get(a.ID); err != nil {
			others <- err
			return
		}
		s.List(Filter{})
		a.State = StateReady
		if err := s.Update(a); err != nil {
			others <- err
			return
		}
		others <- s.Create(samplePod(newID(t), "b", nil))
	}()
	select {
	case err := <-others:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("reads and other pods' writes waited for one pod's record to be written")
	}
	twin := samplePod(newID(t), "slow", nil)
	if err := s.Create(twin); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("a pod with the name of one being created: %v, want AlreadyExists", err)
	}
	if _, err := s.Get(slow.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get of a pod whose record is not written yet: %v, want NotFound", err)
	}
	close(release)
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(slow.ID); err != nil {
		t.Errorf("Get once written: %v", err)
	}
	if err := s.Delete(slow.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(slow.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
}
