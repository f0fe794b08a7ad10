package rdt

import (
	"maps"
	"slices"
	"strconv"
)

// resolveMB resolves memory bandwidth. Unlike cache, MB is not exclusive:
// each partition gets its share of the link and each class a share of its
// partition's (goresctrl doc/rdt.md).
func (p *planner) resolveMB() error {
	parts, anyClass := p.configured(func(_, _ catConfig, mb mbConfig) bool { return mb != nil })
	mb := p.in.MB
	if ok, err := p.checkPresence("MB", parts, anyClass, mb != nil); !ok {
		return err
	}
	for _, pn := range p.parts {
		fp := p.f.Partitions[pn]
		for _, id := range mb.Domains {
			base, err := mbBase(mb, fp.MBAllocation, id)
			if err != nil {
				return invalidf("partition %s: MB domain %d: %s", pn, id, err)
			}
			for _, cn := range slices.Sorted(maps.Keys(fp.Classes)) {
				fc, name := fp.Classes[cn], canonicalClass(cn)
				var cfg mbConfig
				if fc != nil {
					cfg = fc.MBAllocation
				}
				v, err := mbClassValue(mb, cfg, id, base)
				if err != nil {
					return invalidf("class %s: MB domain %d: %s", name, id, err)
				}
				p.values[name]["MB"][id] = strconv.FormatUint(v, 10)
			}
		}
	}
	return nil
}

// mbBase is a partition's MB value in the host's unit.
func mbBase(mb *MBInfo, cfg mbConfig, id int) (uint64, error) {
	v, ok := lookupID(cfg, id)
	switch {
	case !ok:
		return 0, errString("no allocation for this domain and no \"all\"")
	case mb.MBps && !v.HasMBps:
		return 0, errString("resctrl is mounted with mba_MBps but no \"NMBps\" value is given")
	case mb.MBps:
		return v.MBps, nil
	case !v.HasPct:
		return 0, errString("no \"N%\" value is given (resctrl is not mounted with mba_MBps)")
	}
	return uint64(v.Pct), nil
}

// mbClassValue is a class's MB value: a percentage of its partition's, or
// (with mba_MBps) an MBps value capped at the partition's. Percentages are
// rounded up to bandwidth_gran, as the kernel would do silently, and
// raised to min_bandwidth, below which the kernel rejects the write.
func mbClassValue(mb *MBInfo, cfg mbConfig, id int, base uint64) (uint64, error) {
	v := mbValue{Pct: 100, HasPct: true}
	if cfg != nil {
		var ok bool
		if v, ok = lookupID(cfg, id); !ok {
			return 0, errString("no allocation for this domain and no \"all\"")
		}
	}
	if mb.MBps {
		switch {
		case v.HasMBps:
			return min(v.MBps, base), nil
		case v.HasPct:
			return max(base*uint64(v.Pct)/100, 1), nil
		}
		return 0, errString("no MBps or percentage value is given")
	}
	if !v.HasPct {
		return 0, errString("no \"N%\" value is given (resctrl is not mounted with mba_MBps)")
	}
	val := base * uint64(v.Pct) / 100
	gran := uint64(mb.BandwidthGran)
	val = (val + gran - 1) / gran * gran
	return min(max(val, uint64(mb.MinBandwidth)), 100), nil
}

// errString is a plain error for messages the caller wraps with context.
type errString string

func (e errString) Error() string { return string(e) }
