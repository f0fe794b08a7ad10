package initproc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// TestDefaultMounts runs a container on a bind rootfs with the default
// mounts and checks, from inside, every mount, device node and /dev link,
// and the hostname.
func TestDefaultMounts(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	script := `echo "== mountinfo"; cat /proc/self/mountinfo
echo "== devices"; for d in null zero full random urandom tty; do stat -c "%n %F %t:%T %a" /dev/$d; done
echo "== links"; for l in fd stdin stdout stderr ptmx; do echo "$l $(readlink /dev/$l)"; done
echo "== hostname"; hostname
echo "== end"`
	out := mustRun(t, initmsg.Config{Spec: baseSpec(rootfs, script)})
	mounts := parseMounts(section(out, "mountinfo"))

	root, ok := mounts["/"]
	if !ok || strings.Contains(root.optional, "shared:") {
		t.Errorf("/ = %+v, want a private mount", root)
	}
	want := []struct {
		point, fsType string
		opts          []string // per-mount or super options
	}{
		{"/proc", "proc", []string{"nosuid", "nodev", "noexec"}},
		{"/dev", "tmpfs", []string{"nosuid", "mode=755"}},
		{"/dev/pts", "devpts", []string{"nosuid", "noexec", "ptmxmode=666", "mode=620", "gid=5"}},
		{"/dev/shm", "tmpfs", []string{"nosuid", "nodev", "noexec", "size=65536k"}},
		{"/dev/mqueue", "mqueue", []string{"nosuid", "nodev", "noexec"}},
		{"/sys", "sysfs", []string{"ro", "nosuid", "nodev", "noexec"}},
		{"/sys/fs/cgroup", cgroupFSType(t), []string{"ro", "nosuid", "nodev", "noexec"}},
	}
	for _, w := range want {
		m, ok := mounts[w.point]
		if !ok {
			t.Errorf("%s not mounted; mountinfo:\n%s", w.point, section(out, "mountinfo"))
			continue
		}
		if m.fsType != w.fsType {
			t.Errorf("%s type %s, want %s", w.point, m.fsType, w.fsType)
		}
		for _, o := range w.opts {
			if !hasOpt(m.opts, o) && !hasOpt(m.superOpts, o) {
				t.Errorf("%s options %s / %s lack %s", w.point, m.opts, m.superOpts, o)
			}
		}
	}
	// The host's hierarchies, each a read-only bind of our own cgroup.
	hiers, err := CgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hiers {
		if h.MountPoint == "/sys/fs/cgroup" {
			continue // a pure v2 host: the cgroup2 mount itself, checked above
		}
		p := filepath.Join("/sys/fs/cgroup", filepath.Base(h.MountPoint))
		m, ok := mounts[p]
		if !ok || m.fsType != h.FSType || !hasOpt(m.opts, "ro") {
			t.Errorf("%s = %+v (ok=%v), want a read-only %s", p, m, ok, h.FSType)
		}
	}
	for _, host := range []string{"/mnt/sandboxing/model_tools_env/v1/python", "/sys/fs/cgroup/cpu/cpu"} {
		if _, ok := mounts[host]; ok {
			t.Errorf("host mount %s visible in the container", host)
		}
	}
	wantDevs := "/dev/null character special file 1:3 666\n/dev/zero character special file 1:5 666\n" +
		"/dev/full character special file 1:7 666\n/dev/random character special file 1:8 666\n" +
		"/dev/urandom character special file 1:9 666\n/dev/tty character special file 5:0 666\n"
	if got := section(out, "devices"); got != wantDevs {
		t.Errorf("devices:\n%s\nwant:\n%s", got, wantDevs)
	}
	wantLinks := "fd /proc/self/fd\nstdin /proc/self/fd/0\nstdout /proc/self/fd/1\nstderr /proc/self/fd/2\nptmx pts/ptmx\n"
	if got := section(out, "links"); got != wantLinks {
		t.Errorf("links:\n%s\nwant:\n%s", got, wantLinks)
	}
	if got := section(out, "hostname"); got != "crib-test\n" {
		t.Errorf("hostname %q", got)
	}
}

// TestOverlayRootfs mounts the rootfs as an overlay of two layers and an
// upper dir: the upper layer wins, writes land in the upper dir only.
func TestOverlayRootfs(t *testing.T) {
	dir := t.TempDir()
	base := busyboxRootfs(t, filepath.Join(dir, "l0"))
	top := filepath.Join(dir, "l1")
	for _, l := range []string{base, top} {
		os.MkdirAll(filepath.Join(l, "etc"), 0o755)
	}
	os.WriteFile(filepath.Join(base, "etc/layer"), []byte("base\n"), 0o644)
	os.WriteFile(filepath.Join(top, "etc/layer"), []byte("top\n"), 0o644)
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := baseSpec(merged, "cat /etc/layer; echo written > /etc/new")
	out := mustRun(t, initmsg.Config{
		Spec:   spec,
		Rootfs: initmsg.Rootfs{Lower: []string{top, base}, Upper: upper, Work: work},
	})
	if out != "top\n" {
		t.Errorf("/etc/layer = %q, want the top layer's", out)
	}
	if b, err := os.ReadFile(filepath.Join(upper, "etc/new")); err != nil || string(b) != "written\n" {
		t.Errorf("upper/etc/new = %q, %v", b, err)
	}
	for _, l := range []string{top, base, merged} {
		if _, err := os.Stat(filepath.Join(l, "etc/new")); !os.IsNotExist(err) {
			t.Errorf("%s/etc/new exists on the host (%v)", l, err)
		}
	}
}

// TestBindMounts checks bind mounts of a directory and a file, read-only
// with nosuid/nodev/noexec, and propagation.
func TestBindMounts(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, filepath.Join(dir, "rootfs"))
	vol := filepath.Join(dir, "vol")
	os.Mkdir(vol, 0o755)
	os.WriteFile(filepath.Join(vol, "hello"), []byte("hi\n"), 0o644)
	conf := filepath.Join(dir, "app.conf")
	os.WriteFile(conf, []byte("k=v\n"), 0o644)

	spec := baseSpec(rootfs, `echo "== data"; cat /data/hello; touch /data/x 2>/dev/null && echo writable || echo read-only
echo "== conf"; cat /etc/app/app.conf
echo "== rw"; touch /rw/y && echo writable
echo "== mountinfo"; cat /proc/self/mountinfo; echo "== end"`)
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: vol, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec", "rprivate"}},
		specs.Mount{Destination: "/etc/app/app.conf", Type: "bind", Source: conf, Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/rw", Type: "none", Source: vol, Options: []string{"bind", "rshared"}},
	)
	out := mustRun(t, initmsg.Config{Spec: spec})
	if got := section(out, "data"); got != "hi\nread-only\n" {
		t.Errorf("/data: %q", got)
	}
	if got := section(out, "conf"); got != "k=v\n" {
		t.Errorf("/etc/app/app.conf: %q", got)
	}
	if got := section(out, "rw"); got != "writable\n" {
		t.Errorf("/rw: %q", got)
	}
	if _, err := os.Stat(filepath.Join(vol, "y")); err != nil {
		t.Errorf("write through /rw did not reach the volume: %v", err)
	}
	mounts := parseMounts(section(out, "mountinfo"))
	data := mounts["/data"]
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
		if !hasOpt(data.opts, o) {
			t.Errorf("/data options %s lack %s", data.opts, o)
		}
	}
	if strings.Contains(data.optional, "shared:") {
		t.Errorf("/data is shared: %q", data.optional)
	}
	if rw := mounts["/rw"]; !strings.Contains(rw.optional, "shared:") || hasOpt(rw.opts, "ro") {
		t.Errorf("/rw = %+v, want a shared read-write mount", rw)
	}
	if !hasOpt(mounts["/etc/app/app.conf"].opts, "ro") {
		t.Errorf("/etc/app/app.conf = %+v, want read-only", mounts["/etc/app/app.conf"])
	}
}

// TestMaskedReadonlyPaths checks masked files and directories, read-only
// paths and a read-only root; a path the image lacks is skipped.
func TestMaskedReadonlyPaths(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	os.MkdirAll(filepath.Join(rootfs, "secret"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "secret/key"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/token"), []byte("t"), 0o644)
	spec := baseSpec(rootfs, `echo "== masked"; ls /secret; cat /etc/token; stat -c "%F" /etc/token
echo "== ro"; touch /etc/x 2>/dev/null || echo ro-root; touch /dev/shm/x && echo shm-rw
echo 1 2>/dev/null > /proc/sys/kernel/shm_rmid_forced || echo ro-procsys
echo "== end"`)
	spec.Root.Readonly = true
	spec.Linux.MaskedPaths = []string{"/secret", "/etc/token", "/no/such/path"}
	spec.Linux.ReadonlyPaths = []string{"/proc/sys", "/no/such/dir"}
	out := mustRun(t, initmsg.Config{Spec: spec})
	if got := section(out, "masked"); got != "character special file\n" {
		t.Errorf("masked: %q", got)
	}
	if got := section(out, "ro"); got != "ro-root\nshm-rw\nro-procsys\n" {
		t.Errorf("read-only: %q", got)
	}
}

// TestDevShmAndDevices binds the pod's /dev/shm and creates spec devices.
func TestDevShmAndDevices(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, filepath.Join(dir, "rootfs"))
	shm := filepath.Join(dir, "podshm")
	os.Mkdir(shm, 0o1777)
	os.WriteFile(filepath.Join(shm, "seg"), []byte("shared\n"), 0o644)
	mode := os.FileMode(0o600)
	uid, gid := uint32(1000), uint32(5)
	spec := baseSpec(rootfs, `cat /dev/shm/seg; stat -c "%n %F %t:%T %a %u:%g" /dev/fuse /dev/sub/mem`)
	spec.Linux.Devices = []specs.LinuxDevice{
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode, UID: &uid, GID: &gid},
		{Path: "/dev/sub/mem", Type: "c", Major: 1, Minor: 1},
	}
	out := mustRun(t, initmsg.Config{Spec: spec, DevShm: shm})
	want := "shared\n/dev/fuse character special file a:e5 600 1000:5\n/dev/sub/mem character special file 1:1 666 0:0\n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

// TestSymlinkEscape: an image whose /mnt is a symlink to a host directory
// (absolute, and relative with ".." climbing) must get the bind mounts
// inside its own rootfs; the host directory stays untouched.
func TestSymlinkEscape(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, filepath.Join(dir, "rootfs"))
	sentinel := filepath.Join(dir, "sentinel")
	os.Mkdir(sentinel, 0o755)
	vol := filepath.Join(dir, "vol")
	os.Mkdir(vol, 0o755)
	os.WriteFile(filepath.Join(vol, "marker"), []byte("inside\n"), 0o644)
	os.Symlink(sentinel, filepath.Join(rootfs, "mnt"))
	os.Symlink("../../../../../../../../.."+sentinel, filepath.Join(rootfs, "mnt2"))

	spec := baseSpec(rootfs, `cat /mnt/escape/marker /mnt2/escape2/marker`)
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/mnt/escape", Type: "bind", Source: vol, Options: []string{"bind"}},
		specs.Mount{Destination: "/mnt2/escape2", Type: "bind", Source: vol, Options: []string{"bind"}},
	)
	out := mustRun(t, initmsg.Config{Spec: spec})
	if out != "inside\ninside\n" {
		t.Errorf("output %q", out)
	}
	if entries, err := os.ReadDir(sentinel); err != nil || len(entries) != 0 {
		t.Errorf("host sentinel %s touched: %v %v", sentinel, entries, err)
	}
	for _, d := range []string{"escape", "escape2"} {
		if _, err := os.Stat(filepath.Join(rootfs, sentinel, d)); err != nil {
			t.Errorf("mount point not created inside the rootfs: %v", err)
		}
	}
}

// TestCgroupNamespace: with its own cgroup namespace the container gets
// fresh cgroup mounts whose root is its own cgroup, and a shared rootfs
// propagation makes its / shared (in a peer group of its own here, the
// host's / being private), without leaking a mount to the host.
func TestCgroupNamespace(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	spec := baseSpec(rootfs, `cat /proc/self/mountinfo`)
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	spec.Linux.RootfsPropagation = "rshared"
	// The hierarchies as a shim hands them over, listed once for all its
	// containers (the test above has init read mountinfo itself).
	hiers, err := CgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	res := runInit(t, initmsg.Config{Spec: spec, CgroupMounts: hiers}, newNS|unix.CLONE_NEWCGROUP)
	if !res.ready || res.err != nil || res.exitCode != 0 {
		t.Fatalf("container failed: %+v", res)
	}
	mounts := parseMounts(res.stdout)
	if root := mounts["/"]; !strings.Contains(root.optional, "shared:") {
		t.Errorf("/ = %+v, want shared", root)
	}
	for _, h := range hiers {
		if h.MountPoint == "/sys/fs/cgroup" {
			continue // a pure v2 host: the cgroup2 mount itself, checked above
		}
		p := filepath.Join("/sys/fs/cgroup", filepath.Base(h.MountPoint))
		if m := mounts[p]; m.fsType != h.FSType || m.root != "/" || !hasOpt(m.opts, "ro") {
			t.Errorf("%s = %+v, want a read-only %s rooted at the namespace's /", p, m, h.FSType)
		}
	}
}

// The init mounts the hierarchies its config lists, not mountinfo's: a
// shim lists them once for all its containers.
func TestCgroupMountsFromConfig(t *testing.T) {
	if cgroupFSType(t) == "cgroup2" {
		t.Skip("a pure cgroup v2 host mounts one cgroup2, no hierarchies")
	}
	hiers, err := CgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	var one initmsg.CgroupMount
	for _, h := range hiers {
		if h.FSType == "cgroup" {
			one = h
			break
		}
	}
	if one.MountPoint == "" {
		t.Fatalf("no v1 hierarchy among %+v", hiers)
	}
	rootfs := busyboxRootfs(t, t.TempDir())
	out := mustRun(t, initmsg.Config{Spec: baseSpec(rootfs, "ls /sys/fs/cgroup"), CgroupMounts: []initmsg.CgroupMount{one}})
	if want := filepath.Base(one.MountPoint) + "\n"; out != want {
		t.Errorf("/sys/fs/cgroup holds %q, want only %q", out, want)
	}
}

// TestOverlayManyLayers: more layers than one page of mount options holds.
func TestOverlayManyLayers(t *testing.T) {
	dir := t.TempDir()
	var lower []string
	for i := 0; i < 120; i++ {
		l := filepath.Join(dir, "layers", fmt.Sprintf("%03d", i))
		if err := os.MkdirAll(l, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(l, fmt.Sprintf("f%03d", i)), nil, 0o644)
		lower = append([]string{l}, lower...)
	}
	busyboxRootfs(t, lower[len(lower)-1])
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		os.Mkdir(d, 0o755)
	}
	if n := len(overlayData(initmsg.Rootfs{Lower: lower, Upper: upper, Work: work}, "")); n < os.Getpagesize() {
		t.Fatalf("options only %d bytes", n)
	}
	out := mustRun(t, initmsg.Config{
		Spec:   baseSpec(merged, "ls / | grep -c '^f'"),
		Rootfs: initmsg.Rootfs{Lower: lower, Upper: upper, Work: work},
	})
	if out != "120\n" {
		t.Errorf("saw %q layer files, want 120", out)
	}
}

// cgroupFSType is what the container's /sys/fs/cgroup should be: cgroup2 on
// a pure v2 host, otherwise a tmpfs holding one bind per v1 hierarchy.
func cgroupFSType(t *testing.T) string {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.CGROUP2_SUPER_MAGIC {
		return "cgroup2"
	}
	return "tmpfs"
}
