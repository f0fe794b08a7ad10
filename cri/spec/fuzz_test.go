package spec

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FuzzContainer feeds Container arbitrary CRI configs (decoded from
// protobuf bytes, so every field and enum value is reachable), image user
// strings and passwd/group files. It must never panic, and every error on
// a well-formed Input must be classified: a bad CRI input is the caller's
// InvalidArgument (a user the image lacks included), not an internal
// failure.
func FuzzContainer(f *testing.F) {
	for _, in := range goldenInputs() {
		cfg, err := proto.Marshal(in.Config)
		if err != nil {
			f.Fatal(err)
		}
		sb, err := proto.Marshal(in.Sandbox)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(cfg, sb, in.Image.User, in.Image.StopSignal, in.Passwd, in.Group)
	}
	f.Add([]byte{}, []byte{}, "a:b:c", "RTMIN+99", []byte("x:x:1"), []byte("::::"))
	f.Fuzz(func(t *testing.T, cfgBytes, sbBytes []byte, user, stop string, passwd, group []byte) {
		cfg, sb := &criapi.ContainerConfig{}, &criapi.PodSandboxConfig{}
		if proto.Unmarshal(cfgBytes, cfg) != nil || proto.Unmarshal(sbBytes, sb) != nil {
			return
		}
		in := baseInput()
		in.Config, in.Sandbox = cfg, sb
		in.Image.User = user
		in.Image.StopSignal = stop
		in.Passwd, in.Group = passwd, group
		in.PidNS = "/proc/1/ns/pid"
		s, err := Container(in)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) && !isStatError(err) {
				t.Fatalf("unclassified error: %v", err)
			}
		} else if s.Process == nil || len(s.Process.Args) == 0 || s.Root == nil || s.Linux == nil {
			t.Fatalf("incomplete spec without an error: %+v", s)
		}
		_, _ = StopSignal(cfg, in.Image)
	})
}

// isStatError reports the one unclassified error fakeStat produces (a
// permission error on /denied), which Container passes through as is.
func isStatError(err error) bool {
	return errors.Is(err, fs.ErrPermission)
}
