package spec

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCheckInjected(t *testing.T) {
	bind := func(src, dst string, opts ...string) specs.Mount {
		return specs.Mount{Source: src, Destination: dst, Options: opts}
	}
	userns := baseInput()
	userns.UserNS = "/run/crib/pods/x/ns/user"
	noRRO := baseInput()
	noRRO.RecursiveReadOnly = false
	withRRO := baseInput()
	withRRO.RecursiveReadOnly = true
	fuse := specs.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}
	renamed := specs.LinuxDevice{Path: "/dev/crib-fuse", Type: "c", Major: 10, Minor: 229}
	disk := specs.LinuxDevice{Path: "/dev/crib-disk", Type: "b", Major: 8, Minor: 0}
	for _, tc := range []struct {
		name    string
		in      Input
		mounts  []specs.Mount
		nodes   map[string]string
		devices []specs.LinuxDevice
		mention []string // empty: accepted
	}{
		{"bind ro", baseInput(), []specs.Mount{bind("/srv/shared", "/data", "ro", "rbind", "nosuid", "nodev")}, nil, nil, nil},
		{"typed bind", baseInput(), []specs.Mount{{Type: "bind", Source: "/srv/shared", Destination: "/data"}}, nil, nil, nil},
		{"rro", withRRO, []specs.Mount{bind("/srv/shared", "/data", "rbind", "rro")}, nil, nil, nil},
		{"rro without mount_setattr", noRRO, []specs.Mount{bind("/srv/shared", "/data", "rbind", "rro")}, nil, nil, []string{"/data", "rro"}},
		{"nodes", baseInput(), nil, map[string]string{"/dev/crib-fuse": "/dev/fuse", "/dev/fuse": "/dev/fuse", "/dev/crib-disk": "/dev/sda"},
			[]specs.LinuxDevice{fuse, renamed, disk}, nil},
		{"relative destination", baseInput(), []specs.Mount{bind("/srv/shared", "data", "bind")}, nil, nil, []string{`"data"`, "absolute"}},
		{"relative source", baseInput(), []specs.Mount{bind("srv", "/data", "bind")}, nil, nil, []string{"/data", `"srv"`, "absolute"}},
		{"missing source", baseInput(), []specs.Mount{bind("/srv/none", "/data", "rbind")}, nil, nil, []string{"/data", "/srv/none", "does not exist"}},
		{"not a bind", baseInput(), []specs.Mount{{Type: "tmpfs", Source: "tmpfs", Destination: "/scratch"}}, nil, nil, []string{"/scratch", "tmpfs", "bind"}},
		{"shared", baseInput(), []specs.Mount{bind("/srv/shared", "/data", "rbind", "rshared")}, nil, nil, []string{"/data", "rshared"}},
		{"idmap", userns, []specs.Mount{bind("/srv/shared", "/data", "rbind", "ridmap")}, nil, nil, []string{"/data", "ridmap"}},
		{"relative node", baseInput(), nil, map[string]string{"dev/x": "/dev/fuse"}, []specs.LinuxDevice{{Path: "dev/x", Type: "c", Major: 10, Minor: 229}}, []string{"dev/x", "under /dev"}},
		// A vendor gives type and numbers itself: the container would get
		// /dev/mem's numbers at /etc/passwd.
		{"node outside /dev", baseInput(), nil, map[string]string{"/etc/passwd": "/etc/passwd"}, []specs.LinuxDevice{{Path: "/etc/passwd", Type: "c", Major: 1, Minor: 1}}, []string{"/etc/passwd", "under /dev"}},
		{"numbers not the host's", baseInput(), nil, map[string]string{"/dev/crib-fuse": "/dev/fuse"}, []specs.LinuxDevice{{Path: "/dev/crib-fuse", Type: "c", Major: 1, Minor: 1}}, []string{"/dev/crib-fuse", "/dev/fuse", "c 1:1"}},
		{"type not the host's", baseInput(), nil, map[string]string{"/dev/crib-disk": "/dev/sda"}, []specs.LinuxDevice{{Path: "/dev/crib-disk", Type: "c", Major: 8, Minor: 0}}, []string{"/dev/crib-disk", "/dev/sda"}},
		{"host path not a device", baseInput(), nil, map[string]string{"/dev/crib-x": "/srv/shared"}, []specs.LinuxDevice{{Path: "/dev/crib-x", Type: "c", Major: 1, Minor: 3}}, []string{"/dev/crib-x", "/srv/shared"}},
		{"missing host node", baseInput(), nil, map[string]string{"/dev/crib-x": "/dev/none"}, []specs.LinuxDevice{{Path: "/dev/crib-x", Type: "c", Major: 1, Minor: 3}}, []string{"/dev/crib-x", "/dev/none"}},
		{"node not applied", baseInput(), nil, map[string]string{"/dev/crib-fuse": "/dev/fuse"}, nil, []string{"/dev/crib-fuse", "not among"}},
		{"userns same path", userns, nil, map[string]string{"/dev/fuse": "/dev/fuse"}, []specs.LinuxDevice{fuse}, nil},
		{"userns other path", userns, nil, map[string]string{"/dev/crib-fuse": "/dev/fuse"}, []specs.LinuxDevice{renamed}, []string{"/dev/crib-fuse", "/dev/fuse", "user namespace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckInjected(tc.in, tc.mounts, tc.nodes, tc.devices)
			if len(tc.mention) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("err = %v, want FailedPrecondition", err)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}
