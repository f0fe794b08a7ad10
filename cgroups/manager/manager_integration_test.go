package manager_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/internal/testutil"
)

// TestMain lets the test binary double as the workload: with
// CRIB_CGROUPS_HELPER=alloc:<MiB> it waits for a line on stdin (sent once
// it sits in its cgroup), touches that much memory and burns CPU forever.
func TestMain(m *testing.M) {
	if dir, ok := strings.CutPrefix(os.Getenv("CRIB_CGROUPS_HELPER"), "devices:"); ok {
		bufio.NewReader(os.Stdin).ReadString('\n')
		fmt.Println(cgroupstest.ProbeDevices(dir))
		os.Exit(0)
	}
	if h := os.Getenv("CRIB_CGROUPS_HELPER"); h != "" {
		mib, _ := strconv.Atoi(strings.TrimPrefix(h, "alloc:"))
		bufio.NewReader(os.Stdin).ReadString('\n')
		var keep [][]byte
		for range mib {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep))
		for x := 0; ; x++ {
			_ = x * x
		}
	}
	os.Exit(m.Run())
}

type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startHelper starts the workload in cgroup path; cleanup kills it by pid.
func startHelper(t *testing.T, m cgroups.Manager, path string, mib int) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CRIB_CGROUPS_HELPER=alloc:"+strconv.Itoa(mib))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if err := m.AddProc(path, cmd.Process.Pid); err != nil {
		t.Fatalf("AddProc(%s, %d): %v", path, cmd.Process.Pid, err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	return h
}

func ptr[T any](v T) *T { return &v }

func openHost(t testing.TB) manager.Manager {
	t.Helper()
	return openHostWith(t, manager.Options{})
}

// openHostWith is openHost with manager options (a Skipped hook).
func openHostWith(t testing.TB, o manager.Options) manager.Manager {
	t.Helper()
	testutil.RequireRoot(t)
	host, err := cgroups.Detect("/proc/self/mountinfo")
	if err != nil {
		testutil.SkipOrFail(t, err.Error())
	}
	m, err := manager.New(host, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if host.Mode != cgroups.ModeUnified {
		ctl := host.V1Controllers()
		for _, c := range []string{"cpu", "cpuacct", "memory", "pids", "freezer"} {
			if ctl[c] == "" {
				testutil.SkipOrFail(t, "cgroup v1 host lacks the "+c+" controller")
			}
		}
	} else {
		b, _ := os.ReadFile(host.Unified + "/cgroup.subtree_control")
		for _, c := range []string{"cpu", "memory", "pids"} {
			if !strings.Contains(string(b), c) {
				testutil.SkipOrFail(t, "cgroup2 root does not delegate the "+c+" controller")
			}
		}
	}
	t.Logf("cgroup mode %s", m.Mode())
	return m
}

// testRoot is a test-owned parent directly under each hierarchy root,
// removed (with whatever runs in it) when the test ends.
func testRoot(t testing.TB, m cgroups.Manager) string {
	b := make([]byte, 6)
	rand.Read(b)
	root := "/crib-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := m.Remove(root); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return root
}

func TestHostLifecycle(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	pod, c1, c2 := root+"/kubepods/pod1", root+"/kubepods/pod1/c1", root+"/kubepods/pod1/c2"
	if ok, err := m.Exists(pod); ok || err != nil {
		t.Errorf("Exists(%s) before Create = %v, %v; want false, nil", pod, ok, err)
	}
	if err := m.Create(pod, &cgroups.Resources{MemoryMaxBytes: ptr[int64](512 << 20)}); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Exists(pod); !ok || err != nil {
		t.Errorf("Exists(%s) after Create = %v, %v; want true, nil", pod, ok, err)
	}
	if _, err := m.Exists(root + "/a/../../etc"); err == nil {
		t.Errorf("Exists with .. succeeded")
	}
	r1 := &cgroups.Resources{
		CPUWeight: ptr[uint64](50), CPUMax: &cgroups.CPUMax{QuotaMicros: 50000, PeriodMicros: 100000},
		MemoryMaxBytes: ptr[int64](256 << 20), PidsMax: ptr[int64](32),
	}
	if err := m.Create(c1, r1); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(c2, nil); err != nil {
		t.Fatal(err)
	}
	sleep := cgroupstest.SleepIn(t, m, c1)
	if !cgroupstest.InCgroup(sleep.Process.Pid, c1) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(sleep.Process.Pid) + "/cgroup")
		t.Fatalf("sleep is not in %s:\n%s", c1, b)
	}
	s, err := m.Stats(c1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Memory.LimitBytes != 256<<20 || s.Pids.Limit != 32 || s.Pids.Current != 1 {
		t.Errorf("read back limits: memory %d pids %d/%d", s.Memory.LimitBytes, s.Pids.Current, s.Pids.Limit)
	}
	// Live update: shrink memory, add swap, lift the CPU limit.
	if err := m.Update(c1, &cgroups.Resources{MemoryMaxBytes: ptr[int64](64 << 20), MemorySwapMaxBytes: ptr[int64](0),
		PidsMax: ptr[int64](16), CPUMax: &cgroups.CPUMax{QuotaMicros: cgroups.Max}}); err != nil {
		t.Fatal(err)
	}
	// Then grow memory past the old memory+swap (v1 must raise memsw first).
	if err := m.Update(c1, &cgroups.Resources{MemoryMaxBytes: ptr[int64](300 << 20), MemorySwapMaxBytes: ptr[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if s, err = m.Stats(c1); err != nil || s.Memory.LimitBytes != 300<<20 || s.Pids.Limit != 16 {
		t.Errorf("after update: %+v %+v, %v", s.Memory, s.Pids, err)
	}
	// A workload that burns CPU and holds 40 MiB.
	startHelper(t, m, c2, 40)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err = m.Stats(c2)
		if err != nil {
			t.Fatal(err)
		}
		if s.Memory.WorkingSetBytes >= 40<<20 && s.CPU.UsageNanos > 50e6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("c2 stats: cpu %dns, working set %d, rss %d, faults %d, pids %d, psi %v",
		s.CPU.UsageNanos, s.Memory.WorkingSetBytes, s.Memory.RSSBytes, s.Memory.PageFaults, s.Pids.Current, s.PSI != nil)
	if s.CPU.UsageNanos == 0 || s.Memory.WorkingSetBytes < 40<<20 || s.Memory.RSSBytes == 0 || s.Memory.PageFaults == 0 || s.Pids.Current == 0 {
		t.Errorf("c2 stats too low: %+v", s)
	}
	// Tear down the whole test root with both processes still running.
	if err := m.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := sleep.Wait(); err == nil {
		t.Errorf("sleep exited cleanly; want SIGKILL")
	}
	assertGone(t, root)
	if ok, err := m.Exists(pod); ok || err != nil {
		t.Errorf("Exists(%s) after Remove = %v, %v; want false, nil", pod, ok, err)
	}
}

func assertGone(t *testing.T, cg string) {
	t.Helper()
	host, _ := cgroups.Detect("/proc/self/mountinfo")
	for _, mnt := range mountpoints(host) {
		if _, err := os.Stat(mnt + cg); err == nil {
			t.Errorf("%s%s still exists", mnt, cg)
		}
	}
}

func TestHostOOMKill(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	c := root + "/pod/oom"
	if err := m.Create(c, &cgroups.Resources{MemoryMaxBytes: ptr[int64](32 << 20), MemorySwapMaxBytes: ptr[int64](0)}); err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, m, c, 128)
	err := h.cmd.Wait()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper allocating 128 MiB under 32 MiB: %v; want killed", err)
	}
	n, err := m.OOMKills(c)
	if err != nil || n == 0 {
		t.Fatalf("OOMKills = %d, %v; want > 0", n, err)
	}
	t.Logf("oom kills: %d", n)
}

func TestHostBadInput(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	if err := m.Create(root+"/a/../../../etc", nil); err == nil {
		t.Errorf("Create with .. succeeded")
	}
	err := m.Create(root+"/bad", &cgroups.Resources{PidsMax: ptr[int64](-5)})
	if err == nil {
		t.Errorf("Create with pids.max -5 succeeded")
	}
	if m.Mode() != cgroups.ModeUnified {
		if err := m.Create(root+"/bad", &cgroups.Resources{Unified: map[string]string{"memory.high": "1"}}); err == nil {
			t.Errorf("unified on v1 succeeded")
		}
	}
	assertGone(t, root)
}

// mountpoints are the hierarchies a cgroup lives in: the cgroup2 mount, or
// every v1 hierarchy.
func mountpoints(host *cgroups.Host) []string {
	if host.Mode == cgroups.ModeUnified {
		return []string{host.Unified}
	}
	var mnts []string
	for _, h := range host.Hierarchies {
		mnts = append(mnts, h.Mountpoint)
	}
	return mnts
}
