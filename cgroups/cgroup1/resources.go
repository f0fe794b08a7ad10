package cgroup1

import (
	"slices"
	"strconv"
	"strings"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// unlimitedV1 is where v1 limits count as unlimited: the kernel shows
// PAGE_COUNTER_MAX pages (9223372036854771712 with 4 KiB pages) for -1.
const unlimitedV1 = uint64(1) << 62

// set writes r into the hierarchies; supports has checked they exist.
func (m *Manager) set(rel string, r *cgroups.Resources) error {
	if root := m.ctl["devices"]; root != nil && r.Devices != nil {
		if err := setDevices(root, rel, r.Devices); err != nil {
			return err
		}
	}
	if root := m.ctl["cpu"]; root != nil {
		if err := setCPU(root, rel, r); err != nil {
			return err
		}
	}
	if root := m.ctl["cpuset"]; root != nil {
		for f, v := range map[string]string{"cpuset.cpus": r.CpusetCPUs, "cpuset.mems": r.CpusetMems} {
			if v != "" {
				if err := root.Write(rel, f, v); err != nil {
					return err
				}
			}
		}
	}
	if root := m.ctl["memory"]; root != nil {
		if err := setMemory(root, rel, r); err != nil {
			return err
		}
	}
	if root := m.ctl["pids"]; root != nil && r.PidsMax != nil {
		v := "max"
		if *r.PidsMax != cgroups.Max {
			v = strconv.FormatInt(*r.PidsMax, 10)
		}
		if err := root.Write(rel, "pids.max", v); err != nil {
			return err
		}
	}
	if root := m.ctl["blkio"]; root != nil && r.BlockIO != nil {
		if err := m.setBlkio(root, rel, r.BlockIO); err != nil {
			return err
		}
	}
	if root := m.ctl["hugetlb"]; root != nil {
		for _, size := range sortedKeys(r.HugetlbMaxBytes) {
			if err := root.Write(rel, "hugetlb."+size+".limit_in_bytes", strconv.FormatInt(r.HugetlbMaxBytes[size], 10)); err != nil {
				return err
			}
		}
	}
	return nil
}

// setBlkio writes weights to BFQ's files where the cgroup has them, else
// CFQ's (kernels before 5.0), else skips them with a notice; throttles
// go one device per write, as the kernel parses them.
func (m *Manager) setBlkio(root *cgfs.Root, rel string, b *cgroups.BlockIO) error {
	if b.HasWeights() {
		prefix := ""
		for _, p := range []string{"blkio.bfq", "blkio"} {
			if root.Exists(rel, p+".weight") {
				prefix = p
				break
			}
		}
		if prefix == "" {
			m.skips.Notify(cgroups.WeightsSkipped("/"+strings.TrimPrefix(rel, "."), b, "blkio"))
		} else {
			if b.Weight != 0 {
				if err := root.Write(rel, prefix+".weight", strconv.FormatUint(uint64(b.Weight), 10)); err != nil {
					return err
				}
			}
			for _, w := range b.WeightDevices {
				if err := root.Write(rel, prefix+".weight_device", w.Dev()+" "+strconv.FormatUint(uint64(w.Weight), 10)); err != nil {
					return err
				}
			}
		}
	}
	for _, t := range b.Throttles {
		for _, f := range []struct {
			file string
			v    *uint64
		}{{"blkio.throttle.read_bps_device", t.ReadBps}, {"blkio.throttle.write_bps_device", t.WriteBps},
			{"blkio.throttle.read_iops_device", t.ReadIOPS}, {"blkio.throttle.write_iops_device", t.WriteIOPS}} {
			if f.v == nil {
				continue
			}
			// 0 removes the device's limit.
			if err := root.Write(rel, f.file, t.Dev()+" "+strconv.FormatUint(*f.v, 10)); err != nil {
				return err
			}
		}
	}
	return nil
}

// setCPU maps cpu.weight to cpu.shares and cpu.max to the CFS pair. The
// period goes first so that the quota is checked against the new period.
func setCPU(root *cgfs.Root, rel string, r *cgroups.Resources) error {
	if r.CPUWeight != nil {
		if err := root.Write(rel, "cpu.shares", strconv.FormatUint(cgroups.WeightToShares(*r.CPUWeight), 10)); err != nil {
			return err
		}
	}
	if c := r.CPUMax; c != nil {
		if c.PeriodMicros != 0 {
			if err := root.Write(rel, "cpu.cfs_period_us", strconv.FormatUint(c.PeriodMicros, 10)); err != nil {
				return err
			}
		}
		if err := root.Write(rel, "cpu.cfs_quota_us", strconv.FormatInt(c.QuotaMicros, 10)); err != nil {
			return err
		}
	}
	return nil
}

// setMemory writes memory.limit_in_bytes and memory.memsw.limit_in_bytes.
// The kernel keeps memory <= memory+swap at every moment and refuses a
// write that breaks it (EINVAL), so a growing memory limit raises memsw
// first and a shrinking one lowers memory first.
func setMemory(root *cgfs.Root, rel string, r *cgroups.Resources) error {
	mem, swap := r.MemoryMaxBytes, r.MemorySwapMaxBytes
	if mem == nil && swap == nil {
		return nil
	}
	cur, err := readLimit(root, rel, "memory.limit_in_bytes")
	if err != nil {
		return err
	}
	newMem := cur
	if mem != nil {
		newMem = *mem
	}
	var memsw *int64
	switch {
	case swap != nil:
		v := cgroups.MemswFromSwap(*swap, newMem)
		memsw = &v
	case mem != nil && *mem == cgroups.Max:
		// Unlimited memory with swap unset: lift memsw too, or it
		// would stay the effective limit (runc does the same).
		v := cgroups.Max
		memsw = &v
	}
	if memsw != nil && !root.Exists(rel, "memory.memsw.limit_in_bytes") {
		if swap == nil || *swap == 0 {
			memsw = nil // no swap accounting: no swap is what is asked
		} else {
			return cgroups.Invalidf("memory.memsw.limit_in_bytes for /%s (value %d): swap accounting is off on this host (swapaccount=1)", rel, *memsw)
		}
	}
	writeMem := func() error {
		if mem == nil {
			return nil
		}
		return root.Write(rel, "memory.limit_in_bytes", strconv.FormatInt(*mem, 10))
	}
	writeMemsw := func() error {
		if memsw == nil {
			return nil
		}
		return root.Write(rel, "memory.memsw.limit_in_bytes", strconv.FormatInt(*memsw, 10))
	}
	grows := newMem == cgroups.Max || (cur != cgroups.Max && newMem > cur)
	first, second := writeMem, writeMemsw
	if grows {
		first, second = writeMemsw, writeMem
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// readLimit reads a v1 byte limit, Max when unlimited.
func readLimit(root *cgfs.Root, rel, file string) (int64, error) {
	b, err := root.ReadInto(rel, file, make([]byte, 0, 32))
	if err != nil {
		return 0, err
	}
	v, ok := cgfs.ParseUint(b)
	if !ok {
		return 0, cgroups.Invalidf("read %s for /%s: unexpected content %q", file, rel, b)
	}
	if v >= unlimitedV1 {
		return cgroups.Max, nil
	}
	return int64(v), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
