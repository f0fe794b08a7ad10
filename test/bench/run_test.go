package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/initproc"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// bundle writes an OCI bundle whose rootfs is busybox-static and whose process
// is /bin/true, with the namespaces, mounts and masks `runc spec` generates.
func bundle(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		tb.Fatal(err)
	}
	bin, err := os.ReadFile(testregistry.BusyboxPath)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bin, 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, d := range []string{"proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, a := range []string{"true", "sh", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			tb.Fatal(err)
		}
	}
	data, err := json.MarshalIndent(trueSpec(), "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func trueSpec() *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: []string{"/bin/true"}, Cwd: "/",
			Env:             []string{"PATH=/bin"},
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "bench",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace}},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// BenchmarkRunTrue creates, starts and waits for /bin/true in new
// namespaces, a new cgroup and a busybox rootfs, on one bundle:
//
//   - crib: the launcher in process, as crib's per-pod shim runs it for every
//     container (cgroup create, setns path with the process born in its
//     cgroup, Go init handed the host's cgroup hierarchies as the shim
//     lists them once, exec, wait, cgroup remove);
//   - crib-run-oci: the same through the `crib run-oci` command, which adds
//     the start of a crib process per container;
//   - runc: Debian's `runc run`, one runc process per container as
//     containerd's shim uses it (which even runs two: runc create, runc start).
//
// Reports the median and p95 per run.
func BenchmarkRunTrue(b *testing.B) {
	testutil.RequireRoot(b)
	dir := bundle(b)
	state := b.TempDir()
	// crib seals its binary under the state dir: unmount it before the
	// temp dir goes.
	b.Cleanup(func() { _ = launch.UnsealBinary(filepath.Join(state, "bin")) })
	b.Run("crib", func(b *testing.B) { freshKernel(b); launcherLoop(b, dir, state) })
	b.Run("crib-run-oci", func(b *testing.B) {
		freshKernel(b)
		runLoop(b, func(id string) *exec.Cmd {
			return exec.Command(harness.Binary(), "run-oci", "--bundle", dir, "--state", state, id)
		})
	})
	b.Run("runc", func(b *testing.B) {
		freshKernel(b)
		runc, err := exec.LookPath("runc")
		if err != nil {
			b.Skip("runc is not installed — no comparison")
		}
		runLoop(b, func(id string) *exec.Cmd {
			return exec.Command(runc, "--root", filepath.Join(state, "runc"), "run", "--bundle", dir, id)
		})
	})
}

func runLoop(b *testing.B, cmd func(id string) *exec.Cmd) {
	timedLoop(b, func(id string) error {
		c := cmd(id)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %w\n%s", c.Args, err, out)
		}
		return nil
	})
}

// launcherLoop runs the bundle's spec through runtime/launch in this process.
func launcherLoop(b *testing.B, dir, state string) {
	// A directory of its own: crib run-oci seals crib in state/bin, and
	// must not find this loop's crib-init beside it.
	sealDir := filepath.Join(state, "shim-bin")
	b.Cleanup(func() { _ = launch.UnsealBinary(sealDir) })
	bin, err := launch.SealBinary(harness.ShimBinary(), sealDir) // what shims launch from
	if err != nil {
		b.Fatal(err)
	}
	// Sealed beside it, as the daemon does: what inits start from.
	if _, err := launch.SealBinary(harness.InitBinary(), sealDir); err != nil {
		b.Fatal(err)
	}
	spec := trueSpec()
	spec.Root.Path = filepath.Join(dir, "rootfs")
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		b.Fatal(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	// The shim lists the host's cgroup v1 hierarchies once and hands them
	// to every init, which otherwise reads them from mountinfo.
	hiers, err := initproc.CgroupMounts()
	if err != nil {
		b.Fatal(err)
	}
	newNS := uint32(unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP)
	// Where the time goes, per phase (p50 reported below).
	var phases [5][]time.Duration
	timedLoop(b, func(id string) (retErr error) {
		t0 := time.Now()
		path := "/crib-bench/" + id
		if err := cg.Create(path, nil); err != nil {
			return err
		}
		defer func() {
			t := time.Now()
			retErr = errors.Join(retErr, cg.Remove(path))
			phases[4] = append(phases[4], time.Since(t))
		}()
		// Born in its cgroup, as the shim starts a container (stage 0 joins
		// it before the clone; clone3 into it on cgroup v2).
		pl, err := cg.Placement(path)
		if err != nil {
			return err
		}
		defer pl.Close()
		var placed time.Time
		p, err := launch.Start(context.Background(), launch.Options{
			Binary: bin, Role: nsproto.RoleInit, New: newNS, Cgroup: pl,
			Place: func(int) error {
				placed = time.Now()
				phases[0] = append(phases[0], placed.Sub(t0)) // cgroup + spawn + nsexec stage 0
				return nil
			},
			Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec, CgroupMounts: hiers},
			Stdin:  devnull, Stdout: devnull, Stderr: devnull,
		})
		if err != nil {
			return err
		}
		phases[1] = append(phases[1], time.Since(placed)) // Go runtime start + init's setup
		t := time.Now()
		if err := p.Exec(context.Background()); err != nil {
			return err
		}
		phases[2] = append(phases[2], time.Since(t))
		t = time.Now()
		st, err := p.Wait()
		phases[3] = append(phases[3], time.Since(t))
		if err == nil && !st.Success() {
			err = fmt.Errorf("exit %v", st)
		}
		return err
	})
	_ = cg.Remove("/crib-bench")
	for i, name := range []string{"to-placed", "to-ready", "exec", "wait", "cgroup-rm"} {
		slices.Sort(phases[i])
		if n := len(phases[i]); n > 0 {
			b.ReportMetric(float64(phases[i][n/2].Microseconds())/1000, name+"-p50-ms")
		}
	}
}

// timedLoop runs one create+start+wait per iteration and reports p50 and p95.
func timedLoop(b *testing.B, run func(id string) error) {
	var times []time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		if err := run(fmt.Sprintf("bench-%d-%d", os.Getpid(), i)); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*95/100].Microseconds())/1000, "p95-ms")
}
