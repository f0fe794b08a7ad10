package manager_test

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	occgroups "github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/cgroups/ocires"
)

// kubeletResources is the linux.resources crib's cri/spec makes of what the
// kubelet v1.37 (pkg/kubelet/kuberuntime/kuberuntime_container_linux.go,
// cgroupfs driver, default configuration) sends for a container with a CPU
// request and limit in millicores and a memory limit in bytes (0: none) on
// this host: shares never below 2, the CFS period always, a zero hugetlb
// limit for every page size the kernel offers, no swap beyond the memory
// limit, and on cgroup v2 memory.oom.group=1 (singleProcessOOMKill's
// default there), memory.high=max (MemoryQoS off) and, with swapFile,
// memory.swap.max=0: the kubelet sends that when its own cgroup has the file.
func kubeletResources(host *cgroups.Host, swapFile bool, reqMilli, limMilli, memory int64) *specs.LinuxResources {
	shares := uint64(max(reqMilli*1024/1000, 2))
	period := uint64(100000)
	r := &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares, Period: &period}}
	if limMilli > 0 {
		quota := max(limMilli*100000/1000, 1000)
		r.CPU.Quota = &quota
	}
	if memory > 0 {
		swap := memory // memory+swap: no swap
		r.Memory = &specs.LinuxMemory{Limit: &memory, Swap: &swap}
	}
	for _, size := range occgroups.HugePageSizes() { // what the kubelet calls
		r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: size, Limit: 0})
	}
	if host.Mode == cgroups.ModeUnified {
		r.Unified = map[string]string{"memory.oom.group": "1", "memory.high": "max"}
		if swapFile {
			r.Unified["memory.swap.max"] = "0"
		}
	}
	return r
}

// hugetlbOffered says whether the host's cgroups have the hugetlb
// controller where the manager would use it.
func hugetlbOffered(host *cgroups.Host) bool {
	if host.Mode != cgroups.ModeUnified {
		return host.V1Controllers()["hugetlb"] != ""
	}
	b, _ := os.ReadFile(host.Unified + "/cgroup.controllers")
	return slices.Contains(strings.Fields(string(b)), "hugetlb")
}

// TestHostKubeletDefaults creates containers with exactly what the kubelet
// sends for BestEffort, Burstable and Guaranteed pods and starts a process
// in each: every resource must apply or, where the host has no controller
// for it (hugetlb on this project's v1 hosts), be skipped with one notice
// for the whole run, never refuse the container.
func TestHostKubeletDefaults(t *testing.T) {
	var mu sync.Mutex
	var skipped []cgroups.Skipped
	m := openHostWith(t, manager.Options{Skipped: func(s cgroups.Skipped) {
		mu.Lock()
		skipped = append(skipped, s)
		mu.Unlock()
	}})
	host, err := cgroups.Detect("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	root := testRoot(t, m)
	sizes := occgroups.HugePageSizes()
	t.Logf("huge page sizes %v, hugetlb controller offered: %v", sizes, hugetlbOffered(host))
	for _, pod := range []struct {
		qos                        string
		reqMilli, limMilli, memory int64
	}{
		{"besteffort", 0, 0, 0},
		{"burstable", 250, 500, 128 << 20},
		{"guaranteed", 500, 500, 64 << 20},
	} {
		podCg := root + "/kubepods/" + pod.qos + "/pod-" + pod.qos
		c := podCg + "/ctr"
		if err := m.Create(podCg, nil); err != nil {
			t.Fatal(err)
		}
		// As for a kubelet in a cgroup of its own (a systemd unit), which
		// has memory.swap.max whenever the pod's cgroup has it.
		_, err := os.Stat(host.Unified + podCg + "/memory.swap.max")
		swapFile := host.Mode == cgroups.ModeUnified && err == nil
		spec := kubeletResources(host, swapFile, pod.reqMilli, pod.limMilli, pod.memory)
		if len(spec.Unified) > 0 {
			t.Logf("%s: unified %v", pod.qos, spec.Unified)
		}
		res, err := ocires.Convert(spec)
		if err != nil {
			t.Fatalf("%s: convert %+v: %v", pod.qos, spec, err)
		}
		if err := m.Create(c, res); err != nil {
			t.Fatalf("%s: Create with the kubelet's resources: %v", pod.qos, err)
		}
		sleep := exec.Command("sleep", "1000")
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
		if err := m.AddProc(c, sleep.Process.Pid); err != nil {
			t.Fatalf("%s: AddProc: %v", pod.qos, err)
		}
		// The kubelet's in-place resize sends the same shape again.
		if err := m.Update(c, res); err != nil {
			t.Fatalf("%s: Update with the kubelet's resources: %v", pod.qos, err)
		}
		checkKubeletFiles(t, host, c, spec, sizes)
	}
	want := 0
	if len(sizes) > 0 && !hugetlbOffered(host) {
		want = 1
	}
	if len(skipped) != want {
		t.Fatalf("skip notices %+v; want %d", skipped, want)
	}
	if want == 1 && (skipped[0].Controller != "hugetlb" || len(skipped[0].Files) != len(sizes)) {
		t.Errorf("skip notice %+v; want hugetlb with one file per page size %v", skipped[0], sizes)
	}
}

func checkKubeletFiles(t *testing.T, host *cgroups.Host, c string, spec *specs.LinuxResources, sizes []string) {
	t.Helper()
	shares, quota, memory := *spec.CPU.Shares, spec.CPU.Quota, int64(0)
	if spec.Memory != nil {
		memory = *spec.Memory.Limit
	}
	want := map[[2]string]string{}
	weight := cgroups.CPUSharesToWeight(shares)
	if host.Mode == cgroups.ModeUnified {
		q := "max"
		if quota != nil {
			q = strconv.FormatInt(*quota, 10)
		}
		want[[2]string{"cpu", "cpu.weight"}] = strconv.FormatUint(weight, 10)
		want[[2]string{"cpu", "cpu.max"}] = q + " 100000"
		want[[2]string{"memory", "memory.oom.group"}] = "1"
		want[[2]string{"memory", "memory.high"}] = "max"
		if v, ok := spec.Unified["memory.swap.max"]; ok {
			want[[2]string{"memory", "memory.swap.max"}] = v
		}
		if memory > 0 {
			want[[2]string{"memory", "memory.max"}] = strconv.FormatInt(memory, 10)
		}
		if hugetlbOffered(host) {
			for _, s := range sizes {
				want[[2]string{"hugetlb", "hugetlb." + s + ".max"}] = "0"
			}
		}
	} else {
		q := "-1"
		if quota != nil {
			q = strconv.FormatInt(*quota, 10)
		}
		want[[2]string{"cpu", "cpu.shares"}] = strconv.FormatUint(cgroups.WeightToShares(weight), 10)
		want[[2]string{"cpu", "cpu.cfs_quota_us"}] = q
		want[[2]string{"cpu", "cpu.cfs_period_us"}] = "100000"
		if memory > 0 {
			want[[2]string{"memory", "memory.limit_in_bytes"}] = strconv.FormatInt(memory, 10)
			if _, err := os.Stat(host.V1Controllers()["memory"] + c + "/memory.memsw.limit_in_bytes"); err == nil {
				want[[2]string{"memory", "memory.memsw.limit_in_bytes"}] = strconv.FormatInt(memory, 10)
			}
		}
		if hugetlbOffered(host) {
			for _, s := range sizes {
				want[[2]string{"hugetlb", "hugetlb." + s + ".limit_in_bytes"}] = "0"
			}
		}
	}
	for k, v := range want {
		if got := cgroupstest.HostFile(t, host, k[0], c, k[1]); got != v {
			t.Errorf("%s %s = %q, want %q", c, k[1], got, v)
		}
	}
}
