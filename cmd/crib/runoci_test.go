package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/ocires"
)

func TestWithDefaultDevices(t *testing.T) {
	major, minor := int64(7), int64(0)
	tests := []struct {
		name      string
		in        *specs.LinuxResources
		allowAll  bool
		allows    []string // exceptions that must be there
		notAllows []string
	}{
		{name: "no resources", in: nil, allows: []string{"c 1:3 rwm", "c 136:* rwm"}, notAllows: []string{"c 7:0 rwm"}},
		{name: "runc spec", in: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			allows: []string{"c 1:3 rwm", "c 1:5 rwm"}},
		{name: "a device of the bundle", in: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "r"}}},
			allows: []string{"c 7:0 r", "c 1:3 rwm"}},
		{name: "allow all", in: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}, allowAll: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ocires.Convert(withDefaultDevices(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			set, err := cgroups.NewDeviceSet(res.Devices)
			if err != nil {
				t.Fatal(err)
			}
			if set.DefaultAllow != tt.allowAll {
				t.Errorf("default allow %v, want %v", set.DefaultAllow, tt.allowAll)
			}
			has := map[string]bool{}
			for _, e := range set.Exceptions {
				has[e.String()] = true
			}
			for _, r := range tt.allows {
				if !has[r] {
					t.Errorf("no %q in %v", r, set.Exceptions)
				}
			}
			for _, r := range tt.notAllows {
				if has[r] {
					t.Errorf("%q allowed", r)
				}
			}
		})
	}
}

// run-oci runs no hooks, so a bundle with some is refused before anything
// is made, not run without them.
func TestRunOCIRefusesHooks(t *testing.T) {
	bundle := t.TempDir()
	cfg := `{"ociVersion":"1.2.0","process":{"args":["true"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{},
		"hooks":{"createRuntime":[{"path":"/bin/true"}]}}`
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	_, err := runBundle(bundle, state, "x")
	if err == nil || !strings.Contains(err.Error(), "createRuntime hook #0 (/bin/true)") || !strings.Contains(err.Error(), "runs no OCI hooks") {
		t.Fatalf("runBundle = %v", err)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("the refused run left %v in its state dir", ents)
	}
}
