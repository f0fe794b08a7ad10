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
	for _, tc := range []struct {
		name    string
		in      Input
		mounts  []specs.Mount
		nodes   map[string]string
		mention []string // empty: accepted
	}{
		{"bind ro", baseInput(), []specs.Mount{bind("/srv/shared", "/data", "ro", "rbind", "nosuid", "nodev")}, nil, nil},
		{"typed bind", baseInput(), []specs.Mount{{Type: "bind", Source: "/srv/shared", Destination: "/data"}}, nil, nil},
		{"rro", withRRO, []specs.Mount{bind("/srv/shared", "/data", "rbind", "rro")}, nil, nil},
		{"rro without mount_setattr", noRRO, []specs.Mount{bind("/srv/shared", "/data", "rbind", "rro")}, nil, []string{"/data", "rro"}},
		{"nodes", baseInput(), nil, map[string]string{"/dev/crib-null0": "/dev/null", "/dev/fuse": "/dev/fuse"}, nil},
		{"relative destination", baseInput(), []specs.Mount{bind("/srv/shared", "data", "bind")}, nil, []string{`"data"`, "absolute"}},
		{"relative source", baseInput(), []specs.Mount{bind("srv", "/data", "bind")}, nil, []string{"/data", `"srv"`, "absolute"}},
		{"missing source", baseInput(), []specs.Mount{bind("/srv/none", "/data", "rbind")}, nil, []string{"/data", "/srv/none", "does not exist"}},
		{"not a bind", baseInput(), []specs.Mount{{Type: "tmpfs", Source: "tmpfs", Destination: "/scratch"}}, nil, []string{"/scratch", "tmpfs", "bind"}},
		{"shared", baseInput(), []specs.Mount{bind("/srv/shared", "/data", "rbind", "rshared")}, nil, []string{"/data", "rshared"}},
		{"idmap", userns, []specs.Mount{bind("/srv/shared", "/data", "rbind", "ridmap")}, nil, []string{"/data", "ridmap"}},
		{"relative node", baseInput(), nil, map[string]string{"dev/x": "/dev/null"}, []string{"dev/x", "absolute"}},
		{"userns same path", userns, nil, map[string]string{"/dev/fuse": "/dev/fuse"}, nil},
		{"userns other path", userns, nil, map[string]string{"/dev/crib-null0": "/dev/null"}, []string{"/dev/crib-null0", "/dev/null", "user namespace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckInjected(tc.in, tc.mounts, tc.nodes)
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
