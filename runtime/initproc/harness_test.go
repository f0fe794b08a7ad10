package initproc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/mountinfo"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// childEnv marks the re-executed test binary that plays `crib init`.
const childEnv = "_CRIB_INITPROC_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if os.Getenv(windowEnv) == "1" {
			uidChanged = reportWindow
		}
		err := Run()
		fmt.Fprintln(os.Stderr, "init:", err)
		os.Exit(1)
	}
	if dir := os.Getenv(unreachableEnv); dir != "" {
		unreachableChild(dir)
	}
	os.Exit(m.Run())
}

// newNS is what the nsexec constructor would have created for role init.
const newNS = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// result is what the launcher saw.
type result struct {
	ready    bool
	err      *initmsg.InitError // before Ready, or after Start (exec)
	stdout   string
	stderr   string
	exitCode int
}

// runInit plays the launcher: it starts the test binary as init in new
// namespaces, sends cfg, answers Ready with Start and collects the
// process's output. It also checks that no mount under the test's own
// directories appeared on the host: every mount must have lived in the
// child's namespace. (Other packages' tests run in parallel and mount their
// own things, so the whole table is not compared.)
func runInit(t *testing.T, cfg initmsg.Config, cloneflags uintptr) result {
	t.Helper()
	return runInitLeaking(t, cfg, cloneflags, nil)
}

// runInitLeaking is runInit with extra open files in init from fd 4 on, as
// a careless launcher would leave them.
func runInitLeaking(t *testing.T, cfg initmsg.Config, cloneflags uintptr, leak []*os.File) result {
	t.Helper()
	testutil.RequireRoot(t)
	testRoot := filepath.Dir(t.TempDir())
	before := hostMounts(t, testRoot)
	defer func() {
		if after := hostMounts(t, testRoot); after != before {
			t.Errorf("host mount table changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	}()
	if cfg.Version == 0 {
		cfg.Version = initmsg.Version
	}
	if cfg.Role == "" {
		cfg.Role = initmsg.RoleInit
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent, child := os.NewFile(uintptr(fds[0]), "launcher"), os.NewFile(uintptr(fds[1]), "init")
	defer parent.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1", initmsg.EnvInitPipe+"=3")
	cmd.ExtraFiles = append([]*os.File{child}, leak...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	// A hung init must not hang the test run: kill it (by its pid) and let
	// the reads below see EOF.
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()

	var res result
	if err := initmsg.WriteConfig(parent, &cfg); err != nil {
		t.Fatal(err)
	}
	var msg initmsg.Message
	if err := initmsg.Read(parent, &msg); err != nil {
		cmd.Wait()
		t.Fatalf("read ready: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	switch msg.Type {
	case initmsg.TypeError:
		res.err = msg.Err().(*initmsg.InitError)
	case initmsg.TypeReady:
		res.ready = true
		if err := initmsg.Write(parent, initmsg.Message{Type: initmsg.TypeStart}); err != nil {
			t.Fatal(err)
		}
		msg = initmsg.Message{}
		err := initmsg.Read(parent, &msg)
		if err == nil && msg.Type == initmsg.TypeError {
			res.err = msg.Err().(*initmsg.InitError)
		} else if !errors.Is(err, io.EOF) {
			t.Fatalf("after start: %v %+v", err, msg)
		}
	default:
		t.Fatalf("unexpected message %+v", msg)
	}
	err = cmd.Wait()
	res.stdout, res.stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.exitCode = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return res
}

// hostMounts returns the test process's mount table (mount points and
// types, which is what a leak would change).
func hostMounts(t *testing.T, under string) string {
	t.Helper()
	var b strings.Builder
	err := scanOwnMounts(nil, func(m mountinfo.Mount) bool {
		if m.Mountpoint == under || strings.HasPrefix(m.Mountpoint, under+"/") {
			fmt.Fprintf(&b, "%s %s\n", m.Mountpoint, m.FSType)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// busyboxApplets are linked into test rootfses.
var busyboxApplets = []string{
	"sh", "cat", "ls", "id", "hostname", "mount", "stat", "readlink", "touch",
	"echo", "grep", "pwd", "env", "mkdir", "true", "test", "umask",
}

// busyboxRootfs makes a minimal rootfs in dir from the host's static
// busybox.
func busyboxRootfs(t *testing.T, dir string) string {
	t.Helper()
	testutil.BusyboxRootfs(t, dir, busyboxApplets...)
	passwd := "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// defaultMounts are the mounts a CRI container gets (runc's `spec`
// defaults plus the cgroup mount).
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// baseSpec runs script with busybox sh in rootPath, as root, in the
// namespaces newNS creates.
func baseSpec(rootPath, script string) *specs.Spec {
	return &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: rootPath},
		Hostname: "crib-test",
		Process: &specs.Process{
			Args: []string{"sh", "-c", script},
			Env:  []string{"PATH=/bin"},
			Cwd:  "/",
		},
		Mounts: defaultMounts(),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
		},
	}
}

// mustRun runs cfg and fails unless the process ran and exited 0.
func mustRun(t *testing.T, cfg initmsg.Config) string {
	t.Helper()
	res := runInit(t, cfg, newNS)
	if !res.ready || res.err != nil || res.exitCode != 0 {
		t.Fatalf("container failed: ready=%v err=%+v exit=%d\nstdout:\n%s\nstderr:\n%s",
			res.ready, res.err, res.exitCode, res.stdout, res.stderr)
	}
	t.Logf("container output:\n%s", res.stdout)
	return res.stdout
}

// mountEntry is one parsed line of the container's mountinfo.
type mountEntry struct {
	root, opts, optional, fsType, superOpts string
}

// parseMounts parses mountinfo text into entries by mount point (the last
// mount on a point wins, as path lookup sees it).
func parseMounts(text string) map[string]mountEntry {
	out := map[string]mountEntry{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(f) {
			continue
		}
		out[f[4]] = mountEntry{
			root: f[3], opts: f[5], optional: strings.Join(f[6:sep], " "),
			fsType: f[sep+1], superOpts: f[sep+3],
		}
	}
	return out
}

// section returns the output between "== name" and the next "== " line.
func section(out, name string) string {
	_, rest, ok := strings.Cut(out, "== "+name+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "== "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func hasOpt(opts, opt string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}
