package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func findMount(ms []specs.Mount, dst string) *specs.Mount {
	for i := range ms {
		if ms[i].Destination == dst {
			return &ms[i]
		}
	}
	return nil
}

func destinations(ms []specs.Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Destination)
	}
	return out
}

func TestMountsDefault(t *testing.T) {
	s := mustContainer(t, baseInput())
	want := []string{"/proc", "/dev", "/sys", "/dev/pts", "/dev/mqueue", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm", "/sys/fs/cgroup"}
	if diff := cmp.Diff(want, destinations(s.Mounts)); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	in := baseInput()
	wantShm := specs.Mount{Destination: "/dev/shm", Type: "bind", Source: in.ShmPath, Options: []string{"rbind", "rprivate", "rw"}}
	if diff := cmp.Diff(&wantShm, findMount(s.Mounts, "/dev/shm")); diff != "" {
		t.Errorf("/dev/shm (-want +got):\n%s", diff)
	}
	if got := findMount(s.Mounts, "/etc/hosts").Options; !cmp.Equal(got, []string{"rbind", "rprivate", "rw"}) {
		t.Errorf("/etc/hosts options = %v, want rw bind", got)
	}
	if s.Linux.RootfsPropagation != "" {
		t.Errorf("rootfs propagation = %q, want runtime default", s.Linux.RootfsPropagation)
	}
}

func TestMountsPodFiles(t *testing.T) {
	in := baseInput()
	sc(&in).ReadonlyRootfs = true
	in.HostnamePath, in.ShmPath = "", ""
	s := mustContainer(t, in)
	if !s.Root.Readonly {
		t.Errorf("root not read-only")
	}
	if findMount(s.Mounts, "/etc/hostname") != nil {
		t.Errorf("/etc/hostname mounted without a host file")
	}
	for _, dst := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		if got := findMount(s.Mounts, dst).Options; !cmp.Equal(got, []string{"rbind", "rprivate", "ro"}) {
			t.Errorf("%s options = %v, want a read-only bind with a read-only rootfs", dst, got)
		}
	}
	if m := findMount(s.Mounts, "/dev/shm"); m.Type != "tmpfs" {
		t.Errorf("/dev/shm = %+v, want a tmpfs without a pod shm", m)
	}

	in = baseInput()
	sc(&in).NamespaceOptions.Ipc = criapi.NamespaceMode_NODE
	in.Sandbox.Linux.SecurityContext.NamespaceOptions.Ipc = criapi.NamespaceMode_NODE
	if m := findMount(mustContainer(t, in).Mounts, "/dev/shm"); m.Source != "/dev/shm" || m.Type != "bind" {
		t.Errorf("host IPC /dev/shm = %+v, want the host's /dev/shm bound", m)
	}
}

func TestMountsCRI(t *testing.T) {
	const data = "/var/lib/kubelet/pods/uid-1/volumes/data"
	rroKernel := func(in *Input) { in.RecursiveReadOnly = true }
	m := func(dst, src string, f func(*criapi.Mount)) func(*Input) {
		return func(in *Input) {
			cm := &criapi.Mount{ContainerPath: dst, HostPath: src}
			if f != nil {
				f(cm)
			}
			in.Config.Mounts = append(in.Config.Mounts, cm)
		}
	}
	for _, tc := range []struct {
		name     string
		mutate   []func(*Input)
		dst      string
		want     *specs.Mount
		rootProp string
		err      errKind
		mention  []string
	}{
		{
			name: "private rw", mutate: []func(*Input){m("/data", data, nil)}, dst: "/data",
			want: &specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "rprivate", "rw"}},
		},
		{
			name: "readonly host-to-container", dst: "/data", rootProp: "rslave",
			mutate: []func(*Input){m("/data/", data, func(c *criapi.Mount) {
				c.Readonly = true
				c.Propagation = criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
				c.SelinuxRelabel = true
			})},
			want: &specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "rslave", "ro"}},
		},
		{
			name: "bidirectional makes the rootfs shared", dst: "/shared", rootProp: "rshared",
			mutate: []func(*Input){
				func(in *Input) { in.Sandbox.Linux.SecurityContext.Privileged = true; sc(in).Privileged = true },
				m("/shared", "/srv/shared", func(c *criapi.Mount) { c.Propagation = criapi.MountPropagation_PROPAGATION_BIDIRECTIONAL }),
				m("/data", data, func(c *criapi.Mount) { c.Propagation = criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER }),
			},
			want: &specs.Mount{Destination: "/shared", Type: "bind", Source: "/srv/shared", Options: []string{"rbind", "rshared", "rw"}},
		},
		{
			name: "mount options", dst: "/data",
			mutate: []func(*Input){m("/data", data, func(c *criapi.Mount) { c.MountOptions = []string{"noexec", "nosuid"} })},
			want:   &specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "rprivate", "rw", "noexec", "nosuid"}},
		},
		{
			name: "replaces the pod's /etc/hosts", dst: "/etc/hosts",
			mutate: []func(*Input){m("/etc/hosts", "/var/lib/kubelet/pods/uid-1/etc-hosts", nil)},
			want:   &specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: "/var/lib/kubelet/pods/uid-1/etc-hosts", Options: []string{"rbind", "rprivate", "rw"}},
		},
		{name: "bidirectional unprivileged", mutate: []func(*Input){
			m("/shared", "/srv/shared", func(c *criapi.Mount) { c.Propagation = criapi.MountPropagation_PROPAGATION_BIDIRECTIONAL }),
		}, err: invalid, mention: []string{`"/shared"`, "Bidirectional", "privileged"}},
		{name: "relative host path", mutate: []func(*Input){m("/data", "volumes/data", nil)}, err: invalid, mention: []string{`"/data"`, `"volumes/data"`, "absolute"}},
		{name: "missing host path", mutate: []func(*Input){m("/data", "/nope", nil)}, err: invalid, mention: []string{`"/nope"`, "does not exist"}},
		{name: "host path stat fails", mutate: []func(*Input){m("/data", "/denied", nil)}, err: other, mention: []string{"/denied", "permission denied"}},
		{name: "relative container path", mutate: []func(*Input){m("data", data, nil)}, err: invalid, mention: []string{"container path"}},
		{name: "same container path twice", mutate: []func(*Input){m("/data", data, nil), m("/data/", "/srv/shared", nil)}, err: invalid},
		{
			name: "recursive read-only", dst: "/data",
			mutate: []func(*Input){rroKernel, m("/data", data, func(c *criapi.Mount) {
				c.Readonly, c.RecursiveReadOnly = true, true
				c.MountOptions = []string{"nosuid"}
			})},
			want: &specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "rprivate", "ro", "rro", "nosuid"}},
		},
		{name: "recursive read-only without readonly", mutate: []func(*Input){rroKernel, m("/data", data, func(c *criapi.Mount) {
			c.RecursiveReadOnly = true
		})}, err: invalid, mention: []string{`"/data"`, "recursive_read_only", "readonly"}},
		{name: "recursive read-only host-to-container", mutate: []func(*Input){rroKernel, m("/data", data, func(c *criapi.Mount) {
			c.Readonly, c.RecursiveReadOnly = true, true
			c.Propagation = criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		})}, err: invalid, mention: []string{`"/data"`, "PROPAGATION_PRIVATE", "PROPAGATION_HOST_TO_CONTAINER"}},
		{name: "recursive read-only bidirectional", mutate: []func(*Input){rroKernel,
			func(in *Input) { in.Sandbox.Linux.SecurityContext.Privileged = true; sc(in).Privileged = true },
			m("/data", data, func(c *criapi.Mount) {
				c.Readonly, c.RecursiveReadOnly = true, true
				c.Propagation = criapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			})}, err: invalid, mention: []string{`"/data"`, "PROPAGATION_PRIVATE", "PROPAGATION_BIDIRECTIONAL"}},
		{name: "recursive read-only on an old kernel", mutate: []func(*Input){m("/data", data, func(c *criapi.Mount) {
			c.Readonly, c.RecursiveReadOnly = true, true
		})}, err: invalid, mention: []string{`"/data"`, "mount_setattr", "kernel"}},
		{name: "id-mapped", mutate: []func(*Input){m("/data", data, func(c *criapi.Mount) { c.UidMappings = []*criapi.IDMapping{{Length: 1}} })}, err: invalid},
		// Recursive read-only does not exempt a mount from the id-mapping
		// check (a switch ran only the first of the two).
		{name: "id-mapped recursive read-only", mutate: []func(*Input){rroKernel, m("/data", data, func(c *criapi.Mount) {
			c.Readonly, c.RecursiveReadOnly = true, true
			c.UidMappings = []*criapi.IDMapping{{Length: 1}}
		})}, err: invalid},
		{name: "unknown propagation", mutate: []func(*Input){m("/data", data, func(c *criapi.Mount) { c.Propagation = 9 })}, err: invalid},
		{name: "unsafe mount option", mutate: []func(*Input){m("/data", data, func(c *criapi.Mount) { c.MountOptions = []string{"suid"} })}, err: invalid},
		{name: "no Stat function", mutate: []func(*Input){m("/data", data, nil), func(in *Input) { in.Stat = nil }}, err: other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			for _, f := range tc.mutate {
				f(&in)
			}
			s, err := Container(in)
			checkErr(t, err, tc.err, tc.mention...)
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, findMount(s.Mounts, tc.dst)); diff != "" {
				t.Errorf("mount (-want +got):\n%s", diff)
			}
			if s.Linux.RootfsPropagation != tc.rootProp {
				t.Errorf("rootfs propagation = %q, want %q", s.Linux.RootfsPropagation, tc.rootProp)
			}
			n := 0
			for _, got := range s.Mounts {
				if got.Destination == tc.dst {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d mounts at %s, want 1", n, tc.dst)
			}
		})
	}
}

// TestMountsOrder checks parents come before children and that CRI mounts
// over /dev and /sys replace the defaults without hiding /sys/fs/cgroup.
func TestMountsOrder(t *testing.T) {
	in := baseInput()
	for _, dst := range []string{"/data/a/b", "/data", "/dev", "/sys", "/data/a"} {
		in.Config.Mounts = append(in.Config.Mounts, &criapi.Mount{ContainerPath: dst, HostPath: "/srv/shared"})
	}
	s := mustContainer(t, in)
	want := []string{"/proc", "/data", "/dev", "/sys", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/data/a", "/sys/fs/cgroup", "/data/a/b"}
	if diff := cmp.Diff(want, destinations(s.Mounts)); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if m := findMount(s.Mounts, "/dev"); m.Type != "bind" {
		t.Errorf("/dev = %+v, want the CRI bind", m)
	}
	for i, m := range s.Mounts {
		for _, later := range s.Mounts[i+1:] {
			if len(later.Destination) < len(m.Destination) && m.Destination[:len(later.Destination)] == later.Destination && m.Destination[len(later.Destination)] == '/' {
				t.Errorf("%s is mounted before its parent %s", m.Destination, later.Destination)
			}
		}
	}
}

func TestMountsPrivileged(t *testing.T) {
	in := baseInput()
	in.Sandbox.Linux.SecurityContext.Privileged = true
	sc(&in).Privileged = true
	s := mustContainer(t, in)
	for _, dst := range []string{"/sys", "/sys/fs/cgroup"} {
		m := findMount(s.Mounts, dst)
		if m.Options[len(m.Options)-1] != "rw" {
			t.Errorf("privileged %s options = %v, want rw", dst, m.Options)
		}
	}
}
