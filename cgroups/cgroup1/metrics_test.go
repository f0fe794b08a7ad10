package cgroup1_test

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"github.com/crib-runtime/crib/cgroups"
)

func TestMetrics(t *testing.T) {
	tr, m := newFake(t, true, append(hier, "blkio")...)
	const pod, c = "/p", "/p/c"
	if err := m.Create(c, nil); err != nil {
		t.Fatal(err)
	}
	cpu, mem, pids, blkio := tr.V1["cpu,cpuacct"], tr.V1["memory"], tr.V1["pids"], tr.V1["blkio"]
	tr.Write(cpu, c, "cpuacct.usage", "123456789\n")
	tr.Write(cpu, c, "cpu.cfs_quota_us", "20000\n")
	tr.Write(cpu, c, "cpu.cfs_period_us", "100000\n")
	tr.Write(cpu, c, "cpu.shares", "512\n")
	tr.Write(mem, c, "memory.usage_in_bytes", "5000000\n")
	tr.Write(mem, c, "memory.limit_in_bytes", "8000000\n")
	tr.Write(mem, c, "memory.memsw.limit_in_bytes", "9000000\n")
	tr.Write(mem, c, "memory.soft_limit_in_bytes", "9223372036854771712\n")
	tr.Write(mem, c, "memory.stat", "cache 1\ntotal_cache 700000\ntotal_rss 3000000\ntotal_mapped_file 50000\ntotal_swap 4096\ntotal_inactive_file 1000000\n")
	tr.Write(mem, c, "memory.kmem.usage_in_bytes", "300000\n")
	tr.Write(mem, c, "memory.max_usage_in_bytes", "6000000\n")
	tr.Write(mem, c, "memory.failcnt", "7\n")
	tr.Write(mem, c, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
	tr.Write(blkio, c, "blkio.throttle.io_service_bytes_recursive",
		"8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\n253:1 Write 512\nTotal 12800\n")
	tr.Write(blkio, c, "blkio.throttle.io_serviced_recursive", "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n")
	tr.Write(pids, pod, "cgroup.procs", "10\n")
	tr.Write(pids, c, "cgroup.procs", "11\n")

	got, err := m.Metrics(c)
	if err != nil {
		t.Fatal(err)
	}
	want := cgroups.Metrics{
		Memory: cgroups.MemoryDetail{CacheBytes: 700000, MappedFileBytes: 50000, KernelBytes: 300000,
			SwapBytes: 4096, MaxUsageBytes: 6000000, Failcnt: 7},
		// memsw is memory+swap: the swap alone is the difference.
		Limits: cgroups.Limits{CPUPeriodMicros: 100000, CPUQuotaMicros: 20000, CPUShares: 512, SwapBytes: 1000000},
		IO: []cgroups.DeviceIO{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2},
			{Major: 253, Minor: 1, WriteBytes: 512}},
		Procs:    []int{11},
		OOMKills: 3,
	}
	if got.Stats.CPU.UsageNanos != 123456789 || got.Stats.Memory.LimitBytes != 8000000 {
		t.Errorf("Stats not read: %+v", got.Stats)
	}
	got.Stats = cgroups.Stats{}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("Metrics (-want +got):\n%s", diff)
	}
	pm, err := m.Metrics(pod)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{10, 11}, pm.Procs); diff != "" {
		t.Errorf("pod procs (-want +got):\n%s", diff)
	}

	// No quota, no memory limit (so no swap limit), no kmem files.
	tr.Write(cpu, c, "cpu.cfs_quota_us", "-1\n")
	tr.Write(mem, c, "memory.limit_in_bytes", "9223372036854771712\n")
	tr.Write(mem, c, "memory.memsw.limit_in_bytes", "9223372036854771712\n")
	tr.Remove(mem, c, "memory.kmem.usage_in_bytes")
	got, err = m.Metrics(c)
	if err != nil {
		t.Fatal(err)
	}
	if l := got.Limits; l.CPUQuotaMicros != 0 || l.SwapBytes != 0 || got.Memory.KernelBytes != 0 {
		t.Errorf("unlimited: %+v %+v", l, got.Memory)
	}

	if _, err := m.Metrics("/missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Metrics(missing) = %v", err)
	}
}
