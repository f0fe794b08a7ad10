package cgroup2

import (
	"fmt"
	"time"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// Stats implements cgroups.Manager. It reads eight or nine small files with
// one reused buffer; a controller that is not enabled leaves its figures 0.
func (m *Manager) Stats(path string) (*cgroups.Stats, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return nil, err
	}
	rel := cgroups.Rel(p)
	s := &cgroups.Stats{}
	buf := make([]byte, 0, 4096)
	read := func(file string) ([]byte, bool, error) { return m.root.ReadOptional(rel, file, &buf) }
	b, ok, err := read("cpu.stat")
	if err != nil {
		return nil, err
	}
	s.Timestamp = time.Now()
	if !ok && !m.root.Exists(rel, "") {
		return nil, err404(p)
	}
	ParseCPUStat(b, &s.CPU)
	var inactiveFile uint64
	if b, ok, err = read("memory.stat"); err != nil {
		return nil, err
	} else if ok {
		inactiveFile = ParseMemoryStat(b, &s.Memory)
	}
	if b, ok, err = read("memory.current"); err != nil {
		return nil, err
	} else if ok {
		s.Memory.UsageBytes, _ = cgfs.ParseUint(b)
	}
	if b, ok, err = read("memory.max"); err != nil {
		return nil, err
	} else if ok {
		if v, limited, good := cgfs.ParseLimit(b); good && limited {
			s.Memory.LimitBytes = v
		}
	}
	s.Memory.FinishMemory(inactiveFile)
	if b, ok, err = read("pids.current"); err != nil {
		return nil, err
	} else if ok {
		s.Pids.Current, _ = cgfs.ParseUint(b)
	}
	if b, ok, err = read("pids.max"); err != nil {
		return nil, err
	} else if ok {
		if v, limited, good := cgfs.ParseLimit(b); good && limited {
			s.Pids.Limit = v
		}
	}
	var psi cgroups.PSIStats
	for _, x := range []struct {
		file string
		data *cgroups.PSIData
	}{{"cpu.pressure", &psi.CPU}, {"memory.pressure", &psi.Memory}, {"io.pressure", &psi.IO}} {
		b, ok, err := read(x.file)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if some, full, good := cgfs.ParsePSI(b); good {
			x.data.Some, x.data.Full = psiLine(some), psiLine(full)
			s.PSI = &psi
		}
	}
	return s, nil
}

func err404(p string) error {
	return fmt.Errorf("stats of cgroup %s: %w", p, errdefs.ErrNotFound)
}

func psiLine(l cgfs.PSILine) cgroups.PSILine {
	return cgroups.PSILine{Avg10: l.Avg10, Avg60: l.Avg60, Avg300: l.Avg300, TotalMicros: l.Total}
}

// ParseCPUStat fills c from a cpu.stat file (µs counters).
func ParseCPUStat(b []byte, c *cgroups.CPUStats) {
	cgfs.EachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "usage_usec":
			c.UsageNanos = v * 1000
		case "user_usec":
			c.UserNanos = v * 1000
		case "system_usec":
			c.SystemNanos = v * 1000
		case "nr_periods":
			c.Periods = v
		case "nr_throttled":
			c.ThrottledPeriods = v
		case "throttled_usec":
			c.ThrottledNanos = v * 1000
		}
	})
}

// ParseMemoryStat fills RSS and fault counters of mem from memory.stat and
// returns inactive_file, which the working set excludes.
func ParseMemoryStat(b []byte, mem *cgroups.MemoryStats) (inactiveFile uint64) {
	cgfs.EachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "anon":
			mem.RSSBytes = v
		case "inactive_file":
			inactiveFile = v
		case "pgfault":
			mem.PageFaults = v
		case "pgmajfault":
			mem.MajorPageFaults = v
		}
	})
	return inactiveFile
}
