package cdi

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// baseSpec is the shape crib's cri/spec gives a container: a process, a
// device cgroup that denies all but a few, one mount.
func baseSpec() *specs.Spec {
	major, minor := int64(1), int64(5)
	return &specs.Spec{
		Process: &specs.Process{Env: []string{"PATH=/bin", "KEEP=1"}, User: specs.User{UID: 1000, GID: 1000}},
		Mounts:  []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: &specs.Linux{Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"},
		}}},
	}
}

const yamlSpec = `cdiVersion: "0.6.0"
kind: crib.test/device
containerEdits:
  env: [CRIB_VENDOR=yes]
devices:
- name: null0
  containerEdits:
    deviceNodes: [{path: /dev/crib-null0, hostPath: /dev/null}]
    env: [CRIB_CDI=null0]
    mounts: [{hostPath: /tmp, containerPath: /cdi-data, options: [ro, rbind]}]
- name: quiet
  containerEdits:
    deviceNodes: [{path: /dev/crib-zero, hostPath: /dev/zero, permissions: none}]
`

const jsonSpec = `{"cdiVersion": "0.7.0", "kind": "crib.test/json",
 "devices": [{"name": "a", "containerEdits": {"env": ["CRIB_JSON=a"], "additionalGids": [4242]}}]}`

func TestInjectYAMLAndJSON(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vendor.yaml", yamlSpec)
	write(t, dir, "other.json", jsonSpec)
	inj := New([]string{dir})
	s := baseSpec()
	got, err := inj.Inject(s, []string{"crib.test/device=null0", "crib.test/json=a"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Broken != nil {
		t.Errorf("Broken = %v, want nil", got.Broken)
	}
	if diff := cmp.Diff([]string{"crib.test/device=null0", "crib.test/json=a"}, got.Devices); diff != "" {
		t.Errorf("Devices (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Node{{Path: "/dev/crib-null0", HostPath: "/dev/null"}}, got.Nodes); diff != "" {
		t.Errorf("Nodes (-want +got):\n%s", diff)
	}
	wantMount := specs.Mount{Destination: "/cdi-data", Source: "/tmp", Options: []string{"ro", "rbind"}}
	if diff := cmp.Diff([]specs.Mount{wantMount}, got.Mounts); diff != "" {
		t.Errorf("Mounts (-want +got):\n%s", diff)
	}
	wantAll := []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}, wantMount}
	if diff := cmp.Diff(wantAll, s.Mounts); diff != "" {
		t.Errorf("spec mounts (-want +got):\n%s", diff)
	}
	for _, e := range []string{"PATH=/bin", "KEEP=1", "CRIB_VENDOR=yes", "CRIB_CDI=null0", "CRIB_JSON=a"} {
		if !slices.Contains(s.Process.Env, e) {
			t.Errorf("env %v lacks %s", s.Process.Env, e)
		}
	}
	if !slices.Contains(s.Process.User.AdditionalGids, 4242) {
		t.Errorf("additionalGids = %v, want 4242", s.Process.User.AdditionalGids)
	}
	if len(s.Linux.Devices) != 1 {
		t.Fatalf("devices = %+v", s.Linux.Devices)
	}
	d := s.Linux.Devices[0]
	if d.Path != "/dev/crib-null0" || d.Type != "c" || d.Major != 1 || d.Minor != 3 || d.UID == nil || *d.UID != 1000 {
		t.Errorf("device = %+v", d)
	}
	rules := s.Linux.Resources.Devices
	last := rules[len(rules)-1]
	if len(rules) != 3 || !last.Allow || last.Type != "c" || *last.Major != 1 || *last.Minor != 3 || last.Access != "rwm" {
		t.Errorf("cgroup rules = %+v", rules)
	}
}

func TestPermissionsNoneAddsNoRule(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vendor.yaml", yamlSpec)
	s := baseSpec()
	if _, err := New([]string{dir}).Inject(s, []string{"crib.test/device=quiet"}); err != nil {
		t.Fatal(err)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/crib-zero" {
		t.Errorf("devices = %+v", s.Linux.Devices)
	}
	// An OCI rule with no access would allow rwm.
	if diff := cmp.Diff(baseSpec().Linux.Resources.Devices, s.Linux.Resources.Devices); diff != "" {
		t.Errorf("cgroup rules changed (-want +got):\n%s", diff)
	}
}

func TestLaterDirWins(t *testing.T) {
	static, dynamic := t.TempDir(), t.TempDir()
	write(t, static, "v.yaml", "cdiVersion: \"0.6.0\"\nkind: crib.test/dup\ndevices:\n- name: x\n  containerEdits: {env: [FROM=static]}\n")
	write(t, dynamic, "v.json", `{"cdiVersion": "0.6.0", "kind": "crib.test/dup", "devices": [{"name": "x", "containerEdits": {"env": ["FROM=dynamic"]}}]}`)
	s := baseSpec()
	if _, err := New([]string{static, dynamic}).Inject(s, []string{"crib.test/dup=x"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Process.Env, "FROM=dynamic") || slices.Contains(s.Process.Env, "FROM=static") {
		t.Errorf("env = %v, want FROM=dynamic only", s.Process.Env)
	}
}

func TestRescanSeesNewFiles(t *testing.T) {
	dir := t.TempDir()
	inj := New([]string{dir})
	if _, err := inj.Inject(baseSpec(), []string{"crib.test/device=null0"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("before the file: %v, want InvalidArgument", err)
	}
	write(t, dir, "vendor.yaml", yamlSpec)
	if _, err := inj.Inject(baseSpec(), []string{"crib.test/device=null0"}); err != nil {
		t.Fatalf("after the file: %v", err)
	}
}

func TestUnknownDevice(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vendor.yaml", yamlSpec)
	write(t, dir, "broken.yaml", "cdiVersion: \"0.6.0\"\nkind: [not a kind\n")
	s := baseSpec()
	got, err := New([]string{dir}).Inject(s, []string{"crib.test/device=null0", "crib.test/device=gpu9", "other.io/x=y"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
	for _, w := range []string{"crib.test/device=gpu9", "other.io/x=y", dir, "broken.yaml"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
	if strings.Contains(err.Error(), "crib.test/device=null0,") {
		t.Errorf("error %q names a known device as unknown", err)
	}
	if got.Broken == nil || !strings.Contains(got.Broken.Error(), "broken.yaml") {
		t.Errorf("Broken = %v, want broken.yaml", got.Broken)
	}
	if len(s.Linux.Devices) != 0 || len(s.Process.Env) != 2 {
		t.Errorf("spec edited on error: %+v", s)
	}
}

func TestBrokenFileOfAnotherVendor(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vendor.yaml", yamlSpec)
	write(t, dir, "broken.json", "{")
	got, err := New([]string{dir}).Inject(baseSpec(), []string{"crib.test/device=null0"})
	if err != nil {
		t.Fatalf("a broken file of another vendor failed the injection: %v", err)
	}
	if got.Broken == nil || !strings.Contains(got.Broken.Error(), "broken.json") {
		t.Errorf("Broken = %v, want broken.json", got.Broken)
	}
}

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name, edits string
		words       []string
	}{
		{"rdt", `intelRdt: {closID: gold}`, []string{"Intel RDT", "gold"}},
		{"netdev", `netDevices: [{hostInterfaceName: eth7, name: net0}]`, []string{"eth7", "net0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "v.yaml", "cdiVersion: \"1.1.0\"\nkind: crib.test/refuse\ndevices:\n- name: d\n  containerEdits:\n    env: [A=1]\n    "+tc.edits+"\n")
			s := baseSpec()
			_, err := New([]string{dir}).Inject(s, []string{"crib.test/refuse=d"})
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("err = %v, want FailedPrecondition", err)
			}
			for _, w := range append(tc.words, "crib.test/refuse=d") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			if len(s.Process.Env) != 2 || s.Hooks != nil {
				t.Errorf("spec edited on refusal: %+v", s)
			}
		})
	}
}

// Hooks, the spec file's own and the device's, go into the spec, which
// the shim and the init run as the OCI runtime spec says.
func TestHooksCarried(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "v.yaml", "cdiVersion: \"0.6.0\"\nkind: crib.test/h\ncontainerEdits:\n  hooks: [{hookName: poststop, path: /bin/true}]\ndevices:\n- name: d\n  containerEdits:\n    hooks: [{hookName: createContainer, path: /usr/bin/vendor-hook, args: [vendor-hook, --x]}]\n")
	s := baseSpec()
	if _, err := New([]string{dir}).Inject(s, []string{"crib.test/h=d"}); err != nil {
		t.Fatal(err)
	}
	if s.Hooks == nil || len(s.Hooks.Poststop) != 1 || s.Hooks.Poststop[0].Path != "/bin/true" ||
		len(s.Hooks.CreateContainer) != 1 || s.Hooks.CreateContainer[0].Path != "/usr/bin/vendor-hook" {
		t.Errorf("hooks = %+v", s.Hooks)
	}
}

func TestMissingHostDevice(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "v.yaml", "cdiVersion: \"0.6.0\"\nkind: crib.test/m\ndevices:\n- name: d\n  containerEdits:\n    deviceNodes: [{path: /dev/crib-none, hostPath: /dev/crib-does-not-exist}]\n")
	_, err := New([]string{dir}).Inject(baseSpec(), []string{"crib.test/m=d"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "/dev/crib-does-not-exist") {
		t.Fatalf("err = %v, want FailedPrecondition naming the host path", err)
	}
}

func TestNoSpecDirs(t *testing.T) {
	for _, inj := range []*Injector{New(nil), nil, {}} {
		_, err := inj.Inject(baseSpec(), []string{"crib.test/device=null0"})
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "crib.test/device=null0") ||
			!strings.Contains(err.Error(), "cdi.spec_dirs") {
			t.Errorf("err = %v, want FailedPrecondition naming the device and cdi.spec_dirs", err)
		}
		if got, err := inj.Inject(baseSpec(), nil); err != nil || got.Devices != nil {
			t.Errorf("no devices: %+v, %v", got, err)
		}
	}
}

func TestRequested(t *testing.T) {
	got, err := Requested(map[string]string{
		"cdi.k8s.io/b":    "vendor.com/gpu=1,crib.test/device=null0",
		"cdi.k8s.io/a":    "vendor.com/gpu=0",
		"other/key":       "not a device",
		"io.kubernetes.x": "y",
	}, []string{"crib.test/device=null0"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"crib.test/device=null0", "vendor.com/gpu=0", "vendor.com/gpu=1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got, err := Requested(map[string]string{"a": "b"}, nil); err != nil || got != nil {
		t.Errorf("none: %v, %v", got, err)
	}
	for _, tc := range []struct {
		ann   map[string]string
		cri   []string
		words []string
	}{
		{map[string]string{"cdi.k8s.io/gpu": "vendor.com/gpu=0,gpu1"}, nil, []string{`annotation "cdi.k8s.io/gpu"`, "gpu1"}},
		{map[string]string{"cdi.k8s.io/empty": ""}, nil, []string{`annotation "cdi.k8s.io/empty"`}},
		{nil, []string{"vendor.com/gpu=0", "nogpu"}, []string{"cdi_devices[1]", "nogpu"}},
	} {
		_, err := Requested(tc.ann, tc.cri)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%v %v: err = %v, want InvalidArgument", tc.ann, tc.cri, err)
			continue
		}
		for _, w := range tc.words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %s", err, w)
			}
		}
	}
}

// The nodes reported are in the order the library applies them (a spec
// file's own edits, then its device's), so the last one at a path is the
// node the container gets: what crib checks is what it applies.
func TestNodesInApplyOrder(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "v.yaml", `cdiVersion: "0.6.0"
kind: crib.test/order
containerEdits:
  deviceNodes: [{path: /dev/crib-x, hostPath: /dev/null}]
devices:
- name: d
  containerEdits:
    deviceNodes: [{path: /dev/crib-x, hostPath: /dev/zero}]
`)
	s := baseSpec()
	inj, err := New([]string{dir}).Inject(s, []string{"crib.test/order=d"})
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]string{}
	for _, n := range inj.Nodes {
		last[n.Path] = n.HostPath
	}
	i := slices.IndexFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/crib-x" })
	if i < 0 || s.Linux.Devices[i].Minor != 5 || last["/dev/crib-x"] != "/dev/zero" {
		t.Errorf("applied %+v, reported host node %q: want /dev/zero's 1:5 both", s.Linux.Devices, last["/dev/crib-x"])
	}
}

// A spec file another user could write, or put in its directory, is
// refused, naming it: its edits are as powerful as crib's config.
func TestSpecWritableByOthersRefused(t *testing.T) {
	for _, tc := range []struct {
		name          string
		fileMode, dir os.FileMode
	}{{"file", 0o666, 0o755}, {"directory", 0o644, 0o777}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "vendor.yaml", yamlSpec)
			if err := os.Chmod(filepath.Join(dir, "vendor.yaml"), tc.fileMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.dir); err != nil {
				t.Fatal(err)
			}
			_, err := New([]string{dir}).Inject(baseSpec(), []string{"crib.test/device=null0"})
			if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "only root may") {
				t.Fatalf("err = %v, want FailedPrecondition naming the spec", err)
			}
		})
	}
}
