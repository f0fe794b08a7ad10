package cgroup1

import (
	"fmt"
	"time"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// userHZ is USER_HZ, the unit of cpuacct.stat; 100 on every Linux ABI.
const userHZ = 100

// Stats implements cgroups.Manager from cpuacct, cpu, memory and pids.
func (m *Manager) Stats(path string) (*cgroups.Stats, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return nil, err
	}
	rel := cgroups.Rel(p)
	if !m.exists(rel) {
		return nil, fmt.Errorf("stats of cgroup %s: %w", p, errdefs.ErrNotFound)
	}
	s := &cgroups.Stats{}
	buf := make([]byte, 0, 4096)
	read := func(ctl, file string) ([]byte, bool, error) {
		root := m.ctl[ctl]
		if root == nil {
			return nil, false, nil
		}
		return root.ReadOptional(rel, file, &buf)
	}
	b, ok, err := read("cpuacct", "cpuacct.usage")
	if err != nil {
		return nil, err
	}
	s.Timestamp = time.Now()
	if ok {
		s.CPU.UsageNanos, _ = cgfs.ParseUint(b)
	}
	if b, ok, err = read("cpuacct", "cpuacct.stat"); err != nil {
		return nil, err
	} else if ok {
		ParseCpuacctStat(b, &s.CPU)
	}
	if b, ok, err = read("cpu", "cpu.stat"); err != nil {
		return nil, err
	} else if ok {
		ParseCPUStat(b, &s.CPU)
	}
	var inactiveFile uint64
	if b, ok, err = read("memory", "memory.stat"); err != nil {
		return nil, err
	} else if ok {
		inactiveFile = ParseMemoryStat(b, &s.Memory)
	}
	if b, ok, err = read("memory", "memory.usage_in_bytes"); err != nil {
		return nil, err
	} else if ok {
		s.Memory.UsageBytes, _ = cgfs.ParseUint(b)
	}
	if b, ok, err = read("memory", "memory.limit_in_bytes"); err != nil {
		return nil, err
	} else if ok {
		if v, good := cgfs.ParseUint(b); good && v < unlimitedV1 {
			s.Memory.LimitBytes = v
		}
	}
	s.Memory.FinishMemory(inactiveFile)
	if b, ok, err = read("pids", "pids.current"); err != nil {
		return nil, err
	} else if ok {
		s.Pids.Current, _ = cgfs.ParseUint(b)
	}
	if b, ok, err = read("pids", "pids.max"); err != nil {
		return nil, err
	} else if ok {
		if v, limited, good := cgfs.ParseLimit(b); good && limited {
			s.Pids.Limit = v
		}
	}
	// Pressure files exist in v1 hierarchies only with psi=1 and
	// CONFIG_PSI (kernel's cgroup1 PSI support); most hosts have none.
	var psi cgroups.PSIStats
	for _, x := range []struct {
		ctl, file string
		data      *cgroups.PSIData
	}{{"cpu", "cpu.pressure", &psi.CPU}, {"memory", "memory.pressure", &psi.Memory}, {"blkio", "io.pressure", &psi.IO}} {
		b, ok, err := read(x.ctl, x.file)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if some, full, good := cgfs.ParsePSI(b); good {
			x.data.Some = cgroups.PSILine{Avg10: some.Avg10, Avg60: some.Avg60, Avg300: some.Avg300, TotalMicros: some.Total}
			x.data.Full = cgroups.PSILine{Avg10: full.Avg10, Avg60: full.Avg60, Avg300: full.Avg300, TotalMicros: full.Total}
			s.PSI = &psi
		}
	}
	return s, nil
}

// ParseCpuacctStat fills user and system time from cpuacct.stat (USER_HZ
// ticks).
func ParseCpuacctStat(b []byte, c *cgroups.CPUStats) {
	cgfs.EachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "user":
			c.UserNanos = v * (1e9 / userHZ)
		case "system":
			c.SystemNanos = v * (1e9 / userHZ)
		}
	})
}

// ParseCPUStat fills the throttling counters from the cpu controller's
// cpu.stat (throttled_time in ns).
func ParseCPUStat(b []byte, c *cgroups.CPUStats) {
	cgfs.EachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "nr_periods":
			c.Periods = v
		case "nr_throttled":
			c.ThrottledPeriods = v
		case "throttled_time":
			c.ThrottledNanos = v
		}
	})
}

// ParseMemoryStat fills RSS and faults from a v1 memory.stat, using the
// hierarchical total_* figures, and returns total_inactive_file.
func ParseMemoryStat(b []byte, mem *cgroups.MemoryStats) (inactiveFile uint64) {
	cgfs.EachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "total_rss":
			mem.RSSBytes = v
		case "total_inactive_file":
			inactiveFile = v
		case "total_pgfault":
			mem.PageFaults = v
		case "total_pgmajfault":
			mem.MajorPageFaults = v
		}
	})
	return inactiveFile
}
