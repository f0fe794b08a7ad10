package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// probeUID is an unprivileged host user with no entry anywhere: what any
// local account could do.
const probeUID = 4242

// asHostUser runs a command as probeUID with no supplementary groups.
func asHostUser(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: probeUID, Gid: probeUID, Groups: []uint32{}}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestHostUsersCannotReachCrib regresses the daemon root, containers/ and
// the state dirs being traversable by every host user (0711, upper dirs
// 0755, the pod's 1777 shm under 0711 dirs): a local user who learned a
// container ID could read a container's files, run a setuid-root binary it
// wrote (the CVE-2021-41091 pattern) or share the pod's /dev/shm. A user
// with no privileges tries each and must fail, while the container's own
// non-root users keep working.
func TestHostUsersCannotReachCrib(t *testing.T) {
	ctx := context.Background()
	e := harness.NewEnv(t)
	// The test's own directories are open, so that only crib's modes can
	// stop the probe (MkdirTemp makes e.Dir 0700).
	if err := os.Chmod(e.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	control := filepath.Join(e.Dir, "control")
	if err := os.WriteFile(control, []byte("open"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The layout an older crib left (0711 throughout): the daemon must
	// narrow what it owns at start.
	for _, d := range []string{e.Root, filepath.Join(e.Root, "containers"), e.State, filepath.Join(e.State, "pods")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	asRoot := func(edit *criapi.ContainerConfig) {
		edit.Linux.SecurityContext.RunAsUser = &criapi.Int64Value{Value: 0}
	}
	p := startHostPodIn(t, e, asRoot, "sh", "-c",
		"echo secret > /secret && cp /bin/busybox /id && chmod 4755 /id && echo shm > /dev/shm/shmfile && exec sleep 3600")

	upper := filepath.Join(e.Root, "containers", p.id, "upper")
	shm := filepath.Join(e.State, "pods", p.podID, "shm")
	waitFor(t, func() bool {
		_, err1 := os.Stat(filepath.Join(upper, "id"))
		_, err2 := os.Stat(filepath.Join(shm, "shmfile"))
		return err1 == nil && err2 == nil
	}, "the container's files in its upper dir and the pod's shm")
	if fi, err := os.Stat(filepath.Join(upper, "id")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("the container's setuid copy: %v, %v", fi, err)
	}
	for _, d := range []string{filepath.Join(e.Root, "containers"), filepath.Join(e.State, "pods")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s left by an older crib as 0711: now %v, %v; want 0700", d, fi.Mode().Perm(), err)
		}
	}
	// The pod's shim directory and its shim process's.
	podShim := filepath.Join(e.State, "shims", p.podID[:16])
	procDirs, _ := filepath.Glob(filepath.Join(e.State, "shims", "grp-*"))
	if len(procDirs) != 1 {
		t.Fatalf("shim process dirs %v, want one", procDirs)
	}
	shimDirs := []string{podShim, procDirs[0]}

	// The probe works: the same user reaches what is open to it.
	if out, err := asHostUser("cat", control); err != nil || out != "open" {
		t.Fatalf("control: the probe user cannot read an open file: %q, %v", out, err)
	}
	if _, err := asHostUser("ls", e.Dir); err != nil {
		t.Fatalf("control: the probe user cannot list an open directory: %v", err)
	}

	for _, dir := range []string{
		e.Root, e.State, filepath.Join(e.Root, "images"), filepath.Join(e.Root, "containers"),
		filepath.Join(e.Root, "containers", p.id), upper, filepath.Join(e.Root, "pods"),
		filepath.Join(e.State, "pods"), filepath.Join(e.State, "pods", p.podID), shm,
		filepath.Join(e.State, "shims"), shimDirs[0], shimDirs[1],
	} {
		if out, err := asHostUser("ls", "-a", dir); err == nil {
			t.Errorf("host user %d listed %s: %q", probeUID, dir, out)
		}
	}
	for _, file := range []string{
		filepath.Join(upper, "secret"), filepath.Join(shm, "shmfile"),
		filepath.Join(e.Root, "containers", p.id, "container.json"), filepath.Join(e.Root, "images", "index.json"),
		filepath.Join(shimDirs[1], "shim.log"), filepath.Join(shimDirs[0], "containers"),
	} {
		if out, err := asHostUser("cat", file); err == nil {
			t.Errorf("host user %d read %s: %q", probeUID, file, out)
		}
	}
	// busybox picks its applet from argv[0]: the copy named "id" runs id.
	if out, err := asHostUser(filepath.Join(upper, "id"), "-u"); err == nil {
		t.Errorf("host user %d ran the container's setuid binary: %q", probeUID, out)
	}
	for _, file := range []string{filepath.Join(shm, "fromhost"), filepath.Join(upper, "fromhost")} {
		if _, err := asHostUser("touch", file); err == nil {
			t.Errorf("host user %d created %s", probeUID, file)
		}
	}

	// Inside, nothing changed for the pod's non-root users: "/" (the upper
	// dir's mode) is still 0755 and /dev/shm still 1777.
	nobody := p.run(t, "nobody", func(c *criapi.ContainerConfig) {
		c.Linux.SecurityContext.RunAsUser = &criapi.Int64Value{Value: 65534}
	}, "sleep", "3600")
	stdout, stderr, err := p.c.Runtime.ExecSync(ctx, nobody, []string{"sh", "-c",
		"id -u && ls / >/dev/null && cat /etc/passwd >/dev/null && echo mine > /dev/shm/nobody && cat /dev/shm/nobody /dev/shm/shmfile"}, 10*time.Second)
	if err != nil || string(stdout) != "65534\nmine\nshm\n" {
		t.Fatalf("a non-root container user: stdout %q, stderr %q, %v", stdout, stderr, err)
	}
	// The state dir is traversable though not listable: the CRI socket's
	// group must reach the socket, whose own mode (0660) keeps others out.
	if out, err := asHostUser("test", "-S", e.Sock); err != nil {
		t.Errorf("the CRI socket is unreachable through the state dir: %q, %v", out, err)
	}
}
