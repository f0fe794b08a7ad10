package cgroup2

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
	"github.com/crib-runtime/crib/cgroups/internal/devfilter"
	"golang.org/x/sys/unix"
)

// setDevices attaches the device program for rules to rel, replacing the
// one there; nil rules leave it alone. There is no device controller file on
// v2: the device cgroup is a BPF_CGROUP_DEVICE program, which runs for the
// cgroup and every cgroup below it, together with the ancestors' programs. A
// program that cannot be attached is an error: a container without it could
// open every device node it can make.
func (m *Manager) setDevices(rel string, rules []cgroups.DeviceRule) error {
	if rules == nil {
		return nil
	}
	set, err := cgroups.NewDeviceSet(rules)
	if err != nil {
		return err
	}
	prog := devfilter.Encode(devfilter.Program(set))
	if err := m.attachDevices(rel, prog); err != nil {
		return fmt.Errorf("apply device rules to cgroup /%s: %w", rel, err)
	}
	return nil
}

// set writes r into cgroup rel, controller by controller, the device
// program first. Unified entries go
// last so that they override the typed fields, as in runc.
func (m *Manager) set(rel string, r *cgroups.Resources) error {
	if err := m.setDevices(rel, r.Devices); err != nil {
		return err
	}
	for _, fn := range []func(*cgfs.Root, string, *cgroups.Resources) error{
		setCPU, setCpuset, setMemory, setPids, setHugetlb, m.setIO, setUnified,
	} {
		if err := fn(m.root, rel, r); err != nil {
			return err
		}
	}
	return nil
}

// setIO writes weights to io.bfq.weight where the cgroup has it (BFQ takes
// blkio's 10..1000 as they are), else to io.weight (iocost, 1..10000,
// scaled as runc does), else skips them with a notice; then one io.max
// line per throttled device.
func (m *Manager) setIO(root *cgfs.Root, rel string, r *cgroups.Resources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	if b.HasWeights() {
		file, scale := "", func(w uint16) uint64 { return uint64(w) }
		switch {
		case root.Exists(rel, "io.bfq.weight"):
			file = "io.bfq.weight"
		case root.Exists(rel, "io.weight"):
			file, scale = "io.weight", IOWeight
		}
		if file == "" {
			m.skips.Notify(cgroups.WeightsSkipped("/"+strings.TrimPrefix(rel, "."), b, "io"))
		} else {
			if b.Weight != 0 {
				if err := root.Write(rel, file, strconv.FormatUint(scale(b.Weight), 10)); err != nil {
					return err
				}
			}
			for _, w := range b.WeightDevices {
				if err := root.Write(rel, file, w.Dev()+" "+strconv.FormatUint(scale(w.Weight), 10)); err != nil {
					return err
				}
			}
		}
	}
	for _, t := range b.Throttles {
		if v := IOMaxLine(t); v != "" {
			if err := root.Write(rel, "io.max", v); err != nil {
				return err
			}
		}
	}
	return nil
}

// IOWeight maps a blkio weight (10..1000) to io.weight (1..10000) linearly,
// the map runc and the kubelet use.
func IOWeight(w uint16) uint64 {
	return 1 + (uint64(w)-cgroups.MinBlkioWeight)*9999/(cgroups.MaxBlkioWeight-cgroups.MinBlkioWeight)
}

// IOMaxLine formats t as an io.max line, "254:0 rbps=1048576 wiops=max",
// "" when it sets nothing. 0 (no limit) is written "max": io.max refuses 0
// (ERANGE).
func IOMaxLine(t cgroups.DeviceThrottle) string {
	var sb strings.Builder
	for _, f := range []struct {
		key string
		v   *uint64
	}{{"rbps", t.ReadBps}, {"wbps", t.WriteBps}, {"riops", t.ReadIOPS}, {"wiops", t.WriteIOPS}} {
		if f.v == nil {
			continue
		}
		v := "max"
		if *f.v != 0 {
			v = strconv.FormatUint(*f.v, 10)
		}
		sb.WriteString(" " + f.key + "=" + v)
	}
	if sb.Len() == 0 {
		return ""
	}
	return t.Dev() + sb.String()
}

func setCPU(root *cgfs.Root, rel string, r *cgroups.Resources) error {
	if r.CPUWeight != nil {
		if err := root.Write(rel, "cpu.weight", strconv.FormatUint(*r.CPUWeight, 10)); err != nil {
			return err
		}
	}
	if c := r.CPUMax; c != nil {
		if err := root.Write(rel, "cpu.max", CPUMaxValue(*c)); err != nil {
			return err
		}
	}
	return nil
}

// CPUMaxValue formats cpu.max: "$MAX $PERIOD", or "$MAX" alone to keep the
// current period.
func CPUMaxValue(c cgroups.CPUMax) string {
	v := limit(c.QuotaMicros)
	if c.PeriodMicros != 0 {
		v += " " + strconv.FormatUint(c.PeriodMicros, 10)
	}
	return v
}

func limit(v int64) string {
	if v == cgroups.Max {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

func setCpuset(root *cgfs.Root, rel string, r *cgroups.Resources) error {
	if r.CpusetCPUs != "" {
		if err := root.Write(rel, "cpuset.cpus", r.CpusetCPUs); err != nil {
			return err
		}
	}
	if r.CpusetMems != "" {
		if err := root.Write(rel, "cpuset.mems", r.CpusetMems); err != nil {
			return err
		}
	}
	return nil
}

// setMemory writes memory.max and memory.swap.max. The two are independent
// in v2, but the order still matters on a live update: lowering memory.max
// makes the kernel reclaim, and reclaim of anonymous memory needs swap room.
// So a growing swap limit goes first, a shrinking one last.
func setMemory(root *cgfs.Root, rel string, r *cgroups.Resources) error {
	mem, swap := r.MemoryMaxBytes, r.MemorySwapMaxBytes
	writeMem := func() error {
		if mem == nil {
			return nil
		}
		return root.Write(rel, "memory.max", limit(*mem))
	}
	writeSwap := func() error {
		if swap == nil {
			return nil
		}
		err := root.Write(rel, "memory.swap.max", limit(*swap))
		if err != nil && errors.Is(err, unix.ENOENT) && *swap == 0 && root.Exists(rel, "memory.max") {
			// No swap accounting (CONFIG_SWAP off): no swap is
			// what the caller wants anyway.
			return nil
		}
		return err
	}
	first, second := writeMem, writeSwap
	if swap != nil && swapGrows(root, rel, *swap) {
		first, second = writeSwap, writeMem
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

func swapGrows(root *cgfs.Root, rel string, swap int64) bool {
	b, err := root.ReadInto(rel, "memory.swap.max", make([]byte, 0, 32))
	if err != nil {
		return false
	}
	cur, limited, ok := cgfs.ParseLimit(b)
	if !ok {
		return false
	}
	if swap == cgroups.Max {
		return limited
	}
	return limited && uint64(swap) > cur
}

func setPids(root *cgfs.Root, rel string, r *cgroups.Resources) error {
	if r.PidsMax == nil {
		return nil
	}
	return root.Write(rel, "pids.max", limit(*r.PidsMax))
}

func setHugetlb(root *cgfs.Root, rel string, r *cgroups.Resources) error {
	for _, size := range sortedKeys(r.HugetlbMaxBytes) {
		if err := root.Write(rel, "hugetlb."+size+".max", limit(r.HugetlbMaxBytes[size])); err != nil {
			return err
		}
	}
	return nil
}

func setUnified(root *cgfs.Root, rel string, r *cgroups.Resources) error {
	for _, k := range sortedKeys(r.Unified) {
		if err := root.Write(rel, k, r.Unified[k]); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) attachDevices(rel string, prog []byte) error {
	if f := m.root.Fake(); f != nil {
		if f.AttachDevices == nil {
			return errors.New("the fake tree has no AttachDevices")
		}
		return f.AttachDevices(m.root.Path()+"/"+rel, prog)
	}
	dir, err := m.root.OpenFile(rel, "", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer dir.Close()
	return devfilter.Attach(int(dir.Fd()), prog)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
