package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestMountsImageVolume(t *testing.T) {
	const (
		img  = "sha256:aa"
		top  = "/var/lib/crib/images/layers/sha256/bb/diff"
		base = "/var/lib/crib/images/layers/sha256/cc/diff"
	)
	m := func(f func(*criapi.Mount)) func(*Input) {
		return func(in *Input) {
			cm := &criapi.Mount{ContainerPath: "/mnt/vol", Readonly: true, Image: &criapi.ImageSpec{Image: img}}
			if f != nil {
				f(cm)
			}
			in.Config.Mounts = append(in.Config.Mounts, cm)
			in.ImageVolumes = map[string][]string{img: {top, base}}
		}
	}
	lower := "lowerdir=" + top + ":" + base
	for _, tc := range []struct {
		name    string
		mutate  func(*Input)
		want    *specs.Mount
		err     errKind
		mention []string
	}{
		{name: "read-only overlay", mutate: m(nil),
			want: &specs.Mount{Destination: "/mnt/vol", Type: "overlay", Source: "overlay", Options: []string{"ro", "nosuid", "nodev", lower}}},
		{name: "sub path and options, propagation ignored", mutate: m(func(c *criapi.Mount) {
			c.ImageSubPath, c.MountOptions = "etc/ssl", []string{"noexec"}
			c.Propagation = criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		}), want: &specs.Mount{Destination: "/mnt/vol", Type: "overlay", Source: "overlay",
			Options: []string{"ro", "nosuid", "nodev", lower, "x-crib.image-subpath=etc/ssl", "noexec"}}},
		{name: "writable", mutate: m(func(c *criapi.Mount) { c.Readonly = false }), err: invalid, mention: []string{`"/mnt/vol"`, "readonly must be set"}},
		{name: "host path too", mutate: m(func(c *criapi.Mount) { c.HostPath = "/srv" }), err: invalid, mention: []string{"mutually exclusive"}},
		{name: "empty image", mutate: m(func(c *criapi.Mount) { c.Image.Image = "" }), err: invalid, mention: []string{"image.image is required"}},
		{name: "layers not given", mutate: func(in *Input) { m(nil)(in); in.ImageVolumes = nil }, err: invalid, mention: []string{"no layers of image sha256:aa"}},
		{name: "layer with a colon", mutate: func(in *Input) { m(nil)(in); in.ImageVolumes[img] = []string{"/a:b"} }, err: invalid, mention: []string{`"/a:b"`}},
		{name: "absolute sub path", mutate: m(func(c *criapi.Mount) { c.ImageSubPath = "/etc" }), err: invalid, mention: []string{`"/etc"`, "relative"}},
		{name: "sub path climbing", mutate: m(func(c *criapi.Mount) { c.ImageSubPath = "etc/../../x" }), err: invalid, mention: []string{`".."`}},
		{name: "id-mapped", mutate: m(func(c *criapi.Mount) { c.UidMappings = []*criapi.IDMapping{{Length: 1}} }), err: invalid},
		{name: "unsafe option", mutate: m(func(c *criapi.Mount) { c.MountOptions = []string{"suid"} }), err: invalid, mention: []string{`"suid"`}},
		{name: "sub path without image", mutate: func(in *Input) {
			in.Config.Mounts = append(in.Config.Mounts, &criapi.Mount{ContainerPath: "/mnt/vol", HostPath: "/srv", ImageSubPath: "etc"})
		}, err: invalid, mention: []string{"image_sub_path without image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			tc.mutate(&in)
			s, err := Container(in)
			checkErr(t, err, tc.err, tc.mention...)
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, findMount(s.Mounts, "/mnt/vol")); diff != "" {
				t.Errorf("mount (-want +got):\n%s", diff)
			}
			if s.Linux.RootfsPropagation != "" {
				t.Errorf("rootfs propagation = %q, want none for an image volume", s.Linux.RootfsPropagation)
			}
		})
	}
}
