package initproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// Regression tests for the working-directory and command escapes (the
// class of runc's CVE-2024-21626): a working directory or args[0] of the
// form /proc/self/fd/N/.. reached the host through an fd init still held,
// and /proc/1/root/... reached the host's / where pid 1 lives there.

// hostTrap is a host directory no container may reach: a secret to read, a
// script to run, and nothing may be created in it.
type hostTrap struct{ dir, sub string }

const (
	trapSecret  = "crib-host-secret"
	trapEscaped = "crib-escaped"
)

func newHostTrap(t *testing.T) *hostTrap {
	t.Helper()
	h := &hostTrap{dir: t.TempDir()}
	h.sub = filepath.Join(h.dir, "sub")
	if err := os.WriteFile(filepath.Join(h.dir, "secret"), []byte(trapSecret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "escape"), []byte("#!/bin/sh\necho "+trapEscaped+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(h.sub, 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// leak opens the trap's sub directory n times: init holds them as fds
// 4..n+3, each with the trap as its "..".
func (h *hostTrap) leak(t *testing.T, n int) []*os.File {
	t.Helper()
	var files []*os.File
	for range n {
		f, err := os.Open(h.sub)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
	}
	return files
}

// check fails the test if the container read or ran anything of the trap
// or created anything in it.
func (h *hostTrap) check(t *testing.T, res result) {
	t.Helper()
	for _, bad := range []string{trapSecret, trapEscaped} {
		if strings.Contains(res.stdout+res.stderr, bad) {
			t.Errorf("the container reached the host directory %s: output has %q\nstdout:\n%s\nstderr:\n%s",
				h.dir, bad, res.stdout, res.stderr)
		}
	}
	var names []string
	filepath.WalkDir(h.dir, func(p string, _ os.DirEntry, _ error) error {
		names = append(names, strings.TrimPrefix(p, h.dir))
		return nil
	})
	if want := []string{"", "/escape", "/secret", "/sub"}; !slices.Equal(names, want) {
		t.Errorf("the host directory %s now holds %q, want %q", h.dir, names, want)
	}
}

// probe is what every escaping container runs: read the secret from its
// working directory or above, run the trap's script. It writes nothing, so
// a regression leaves no litter wherever it lands.
const probe = "cat secret; ./escape; cat ../secret; pwd"

// maxFD is the highest fd the tests try: stdio, the init socket and the
// leaked ones.
const maxFD = 20

// refused fails the test unless init refused to start the process at step.
func refused(t *testing.T, res result, step string) {
	t.Helper()
	if res.err == nil {
		t.Errorf("started (exit %d), want refused at step %q\nstdout:\n%s\nstderr:\n%s",
			res.exitCode, step, res.stdout, res.stderr)
		return
	}
	if res.err.Step != step {
		t.Errorf("refused at step %q (%v), want step %q", res.err.Step, res.err, step)
	}
}

// TestProcSelfFdEscape tries /proc/self/fd/N/.. and /proc/self/fd/N for
// every fd init could hold, as the working directory (new or existing) and
// as the command, in role init (after pivot_root) and role exec, with
// host directories leaked into init as fds 4..20.
func TestProcSelfFdEscape(t *testing.T) {
	h := newHostTrap(t)
	rootfs := busyboxRootfs(t, t.TempDir())
	leak := h.leak(t, maxFD-3)
	for _, role := range []string{initmsg.RoleInit, initmsg.RoleExec} {
		for n := 0; n <= maxFD; n++ {
			fd := "/proc/self/fd/" + strconv.Itoa(n)
			for _, tc := range []struct {
				name, cwd, arg0, step string
			}{
				{"cwd parent", fd + "/..", "sh", stepCwd},
				{"cwd", fd, "sh", stepCwd},
				{"new cwd", fd + "/../made-cwd", "sh", stepCwd},
				{"command", "/", fd + "/../escape", stepExec},
				{"relative command", "/proc", "self/fd/" + strconv.Itoa(n) + "/../escape", stepExec},
			} {
				t.Run(role+"/"+tc.name+"/"+strconv.Itoa(n), func(t *testing.T) {
					spec := baseSpec(rootfs, probe)
					spec.Process.Cwd = tc.cwd
					spec.Process.Args[0] = tc.arg0
					if role == initmsg.RoleExec {
						// In the launcher's own mount namespace: the
						// root the paths must stay in is the host's /,
						// and a leaked fd still leads to the trap.
						spec.Process.Env = []string{"PATH=/bin:/usr/bin"}
						spec.Root, spec.Mounts, spec.Linux = nil, nil, nil
					}
					res := runInitLeaking(t, initmsg.Config{Role: role, Spec: spec}, newNS, leak)
					refused(t, res, tc.step)
					h.check(t, res)
				})
			}
		}
	}
}

// TestProcMagicLinkWorkdir: a WORKDIR through /proc/PID/root, where PID
// is a process on the host's / (pid 1 of a pod sharing its pid namespace,
// or any host process when the pid namespace is the host's), or through
// /proc/self/root, is refused, not created on the host. Here the container
// shares the host's pid namespace and a host process of the test's plays
// that pid 1 (this host's own pid 1 is out of ptrace's reach).
func TestProcMagicLinkWorkdir(t *testing.T) {
	h := newHostTrap(t)
	rootfs := busyboxRootfs(t, t.TempDir())
	host := exec.Command("sleep", "600")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		host.Process.Kill()
		host.Wait()
	})
	hostRoot := "/proc/" + strconv.Itoa(host.Process.Pid) + "/root"
	hostPid := uintptr(newNS &^ unix.CLONE_NEWPID)
	for _, cwd := range []string{
		hostRoot + h.dir,
		hostRoot + h.dir + "/made-cwd",
		hostRoot + "/..",
		"/proc/" + strconv.Itoa(host.Process.Pid) + "/cwd",
		"/proc/self/root/..",
		"/proc/self/root/made-cwd",
		"/proc/thread-self/root/..",
	} {
		t.Run(cwd, func(t *testing.T) {
			spec := baseSpec(rootfs, probe)
			spec.Process.Cwd = cwd
			spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
				return ns.Type == specs.PIDNamespace
			})
			res := runInit(t, initmsg.Config{Spec: spec}, hostPid)
			refused(t, res, stepCwd)
			if res.err != nil && !strings.Contains(res.err.Error(), "magic link") {
				t.Errorf("error %q does not say why", res.err)
			}
			h.check(t, res)
		})
	}
}

// TestWorkdirSymlinkOut: an image whose WORKDIR goes through a symlink to
// a host path (absolute, or climbing with ..) gets that path inside its
// own root, created there; a symlink to a path the rootfs lacks is refused.
// The host's directory is untouched either way.
func TestWorkdirSymlinkOut(t *testing.T) {
	h := newHostTrap(t)
	rootfs := busyboxRootfs(t, t.TempDir())
	if err := os.Symlink(h.dir, filepath.Join(rootfs, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("../", 20)+strings.TrimPrefix(h.dir, "/"), filepath.Join(rootfs, "climb")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(h.dir+"/dangling", filepath.Join(rootfs, "dangling")); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(rootfs, h.dir)
	if err := os.MkdirAll(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"abs", "climb", "dangling"} {
		t.Run(link, func(t *testing.T) {
			spec := baseSpec(rootfs, probe)
			spec.Process.Cwd = "/" + link + "/made-cwd"
			res := runInit(t, initmsg.Config{Spec: spec}, newNS)
			h.check(t, res)
			if link == "dangling" {
				refused(t, res, stepCwd)
				return
			}
			if res.err != nil {
				t.Fatalf("refused: %v", res.err)
			}
			if _, err := os.Stat(filepath.Join(inside, "made-cwd")); err != nil {
				t.Errorf("the working directory is not the one inside the rootfs: %v\nstdout:\n%s", err, res.stdout)
			}
		})
	}
}

// TestWorkdirCreatedAsUser: a missing working directory is made with the
// container's credentials where the user may make it (so it is the
// user's), and by root, root-owned as with runc, where only root may.
func TestWorkdirCreatedAsUser(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	home := filepath.Join(rootfs, "home/user")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cwd      string
		uid, gid uint32
	}{
		{"/home/user/a/b", 1000, 1000},
		{"/srv/app", 0, 0},
	} {
		t.Run(tc.cwd, func(t *testing.T) {
			spec := baseSpec(rootfs, "pwd")
			spec.Process.User = specs.User{UID: 1000, GID: 1000}
			spec.Process.Cwd = tc.cwd
			if out := mustRun(t, initmsg.Config{Spec: spec}); out != tc.cwd+"\n" {
				t.Errorf("pwd = %q, want %s", out, tc.cwd)
			}
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(rootfs, tc.cwd), &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != tc.uid || st.Gid != tc.gid || st.Mode&0o7777 != 0o755 {
				t.Errorf("%s: uid %d gid %d mode %#o, want uid %d gid %d mode 0755",
					tc.cwd, st.Uid, st.Gid, st.Mode&0o7777, tc.uid, tc.gid)
			}
		})
	}
}

// unreachableEnv marks the re-executed test binary that checks enterCwd's
// last guard; its value is the directory to chroot into.
const unreachableEnv = "_CRIB_INITPROC_TEST_UNREACHABLE"

// unreachableChild chroots into dir while it holds an fd of dir's parent,
// then enters "/" resolved from that fd: a working directory outside the
// process's root, which only getcwd can tell. It prints enterCwd's error.
func unreachableChild(dir string) {
	outside, err := unix.Open(filepath.Dir(dir), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err == nil {
		err = unix.Chroot(dir)
	}
	if err == nil {
		err = enterCwd(&root{fd: outside, path: "outside"}, "/")
	}
	fmt.Println("enterCwd:", err)
	os.Exit(0)
}

// TestCwdOutsideRootRefused: a working directory that getcwd(2) reports as
// "(unreachable)" (outside the process's root) is refused, whatever
// resolved it.
func TestCwdOutsideRootRefused(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "jail")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), unreachableEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "outside the container's root") || !strings.Contains(string(out), "(unreachable)") {
		t.Errorf("enterCwd out of the root: %s, want refused as outside the container's root", out)
	}
}
