package rdt

import (
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strconv"
)

// classPlan is one class resolved against the hardware: the schemata its
// group gets.
type classPlan struct {
	Name      string
	Partition string
	Schemata  []schemaLine
	Kube      kubernetesOptions
}

// schemataText is the text written to the group's schemata file.
func (c *classPlan) schemataText() string { return formatSchemata(c.Schemata) }

// planner turns a class file into per-class schemata on one host. values
// holds, per class, resource → domain → value; it starts at the full
// allocation for every resource the host has, so a class gets exactly what
// the file says and nothing left over from an earlier configuration.
type planner struct {
	in     *Info
	f      *classFile
	parts  []string                             // partition names, sorted
	values map[string]map[string]map[int]string // class → resource → id → value
}

// mbpsMax is the kernel's default MB value with mba_MBps (MBA_MAX_MBPS, U32_MAX).
const mbpsMax = 1<<32 - 1

// makePlan validates the file against the host and resolves every class.
// Errors wrap ErrInvalidArgument when the file is wrong for any host and
// ErrFailedPrecondition when this host cannot do what it asks.
func makePlan(in *Info, f *classFile) (map[string]*classPlan, error) {
	p := &planner{in: in, f: f, parts: slices.Sorted(maps.Keys(f.Partitions)), values: map[string]map[string]map[int]string{}}
	for _, pn := range p.parts {
		for cn := range f.Partitions[pn].Classes {
			p.values[canonicalClass(cn)] = p.defaults()
		}
	}
	for _, lvl := range []string{"L3", "L2"} {
		if err := p.resolveCache(lvl); err != nil {
			return nil, err
		}
	}
	if err := p.resolveMB(); err != nil {
		return nil, err
	}
	out := map[string]*classPlan{}
	for _, pn := range p.parts {
		for cn, fc := range f.Partitions[pn].Classes {
			name := canonicalClass(cn)
			cp := &classPlan{Name: name, Partition: pn, Schemata: p.lines(name)}
			if fc != nil {
				cp.Kube = fc.Kubernetes
			}
			out[name] = cp
		}
	}
	return out, nil
}

// defaults is the full allocation of every resource on the host.
func (p *planner) defaults() map[string]map[int]string {
	v := map[string]map[int]string{}
	for _, c := range p.in.Caches {
		v[c.Name] = map[int]string{}
		for _, id := range c.Domains {
			v[c.Name][id] = strconv.FormatUint(c.CBMMask, 16)
		}
	}
	if mb := p.in.MB; mb != nil {
		v["MB"] = map[int]string{}
		full := "100"
		if mb.MBps {
			full = strconv.FormatUint(mbpsMax, 10)
		}
		for _, id := range mb.Domains {
			v["MB"][id] = full
		}
	}
	return v
}

// fullSchemata is the schemata that gives every resource of the host in
// full, which is what the kernel gives a new group.
func fullSchemata(in *Info) []schemaLine {
	p := &planner{in: in}
	p.values = map[string]map[string]map[int]string{RootClass: p.defaults()}
	return p.lines(RootClass)
}

// lines is a class's schemata, resources in the kernel's order.
func (p *planner) lines(class string) []schemaLine {
	var out []schemaLine
	names := append(slices.Clone(cacheResources), "MB")
	for _, res := range names {
		doms, ok := p.values[class][res]
		if !ok {
			continue
		}
		l := schemaLine{Resource: res}
		for _, id := range slices.Sorted(maps.Keys(doms)) {
			l.Domains = append(l.Domains, domainValue{ID: id, Value: doms[id]})
		}
		out = append(out, l)
	}
	return out
}

// catOf returns a partition's or class's allocation for a cache level.
func catOf(l2, l3 catConfig, lvl string) catConfig {
	if lvl == "L2" {
		return l2
	}
	return l3
}

// cacheTarget is one schemata resource of a cache level and which
// allocation in the file feeds it.
type cacheTarget struct {
	res  *CacheInfo
	kind string // "unified", "code" or "data"
}

// targets lists the resources a cache level has on this host: L3, or
// L3CODE and L3DATA under CDP.
func (p *planner) targets(lvl string) []cacheTarget {
	if c := p.in.cache(lvl); c != nil {
		return []cacheTarget{{c, "unified"}}
	}
	code, data := p.in.cache(lvl+"CODE"), p.in.cache(lvl+"DATA")
	if code != nil && data != nil {
		return []cacheTarget{{code, "code"}, {data, "data"}}
	}
	return nil
}

// optional reports the file's "optional" option for a resource.
func (p *planner) optional(res string) bool {
	switch res {
	case "L2":
		return p.f.Options.L2.Optional
	case "L3":
		return p.f.Options.L3.Optional
	}
	return p.f.Options.MB.Optional
}

// configured reports which partitions allocate a resource, and whether any
// class does.
func (p *planner) configured(has func(l2, l3 catConfig, mb mbConfig) bool) (parts []string, anyClass bool) {
	for _, pn := range p.parts {
		fp := p.f.Partitions[pn]
		if has(fp.L2Allocation, fp.L3Allocation, fp.MBAllocation) {
			parts = append(parts, pn)
		}
		for _, c := range fp.Classes {
			if c != nil && has(c.L2Allocation, c.L3Allocation, c.MBAllocation) {
				anyClass = true
			}
		}
	}
	return parts, anyClass
}

// checkPresence decides whether a resource the file allocates is resolved:
// false (and no error) when it is not configured, or missing and optional.
func (p *planner) checkPresence(res string, parts []string, anyClass, onHost bool) (bool, error) {
	if len(parts) == 0 && !anyClass {
		return false, nil
	}
	if !onHost {
		if p.optional(res) {
			return false, nil
		}
		return false, preconditionf("rdt config allocates %s but the host has no %s allocation (set options.%s.optional to ignore)", res, res, lower(res))
	}
	if len(parts) != len(p.parts) {
		return false, invalidf("rdt config: %s allocation given for partitions %v but not for all of %v", res, parts, p.parts)
	}
	return true, nil
}

func lower(res string) string {
	switch res {
	case "L2":
		return "l2"
	case "L3":
		return "l3"
	}
	return "mb"
}

// resolveCache resolves one cache level for every partition and class.
func (p *planner) resolveCache(lvl string) error {
	parts, anyClass := p.configured(func(l2, l3 catConfig, _ mbConfig) bool { return catOf(l2, l3, lvl) != nil })
	targets := p.targets(lvl)
	if ok, err := p.checkPresence(lvl, parts, anyClass, targets != nil); !ok {
		return err
	}
	for _, t := range targets {
		for _, id := range t.res.Domains {
			bases, err := p.partitionMasks(lvl, t, id)
			if err != nil {
				return err
			}
			if err := p.classMasks(lvl, t, id, bases); err != nil {
				return err
			}
		}
	}
	return nil
}

// partitionMasks gives each partition its exclusive slice of one cache
// domain: absolute masks as written (they must not overlap), or
// percentages laid out from bit 0 in partition-name order.
func (p *planner) partitionMasks(lvl string, t cacheTarget, id int) (map[string]uint64, error) {
	props := map[string]proportion{}
	nAbs := 0
	for _, pn := range p.parts {
		fp := p.f.Partitions[pn]
		pr, err := pick(catOf(fp.L2Allocation, fp.L3Allocation, lvl), id, t.kind)
		if err != nil {
			return nil, invalidf("partition %s: %s %s cache id %d: %s", pn, lvl, t.kind, id, err)
		}
		if pr.absolute {
			nAbs++
		} else if pr.low != 0 {
			return nil, invalidf("partition %s: %s: percentage ranges are for classes; a partition takes a plain percentage", pn, lvl)
		}
		props[pn] = pr
	}
	if nAbs != 0 && nAbs != len(p.parts) {
		return nil, invalidf("rdt config: %s cache id %d mixes bitmasks and percentages across partitions", t.res.Name, id)
	}
	out := map[string]uint64{}
	n, cum := bits.OnesCount64(t.res.CBMMask), 0
	var used uint64
	for _, pn := range p.parts {
		pr := props[pn]
		var m uint64
		if pr.absolute {
			m = pr.mask
		} else {
			start := cum * n / 100
			cum += pr.high
			if cum > 100 {
				return nil, invalidf("rdt config: partitions take %d%% of %s cache id %d, more than 100%%", cum, t.res.Name, id)
			}
			width := cum*n/100 - start
			m = (uint64(1)<<width - 1) << start
		}
		if err := checkCBM(t.res, m); err != nil {
			return nil, preconditionf("partition %s: %s cache id %d: %s", pn, t.res.Name, id, err)
		}
		if m&used != 0 {
			return nil, invalidf("partition %s: %s cache id %d: mask %x overlaps another partition's", pn, t.res.Name, id, m)
		}
		used |= m
		out[pn] = m
	}
	return out, nil
}

// classMasks places each class inside its partition's slice.
func (p *planner) classMasks(lvl string, t cacheTarget, id int, bases map[string]uint64) error {
	for _, pn := range p.parts {
		for cn, fc := range p.f.Partitions[pn].Classes {
			name := canonicalClass(cn)
			pr := proportion{high: 100}
			if fc != nil && catOf(fc.L2Allocation, fc.L3Allocation, lvl) != nil {
				var err error
				if pr, err = pick(catOf(fc.L2Allocation, fc.L3Allocation, lvl), id, t.kind); err != nil {
					return invalidf("class %s: %s %s cache id %d: %s", name, lvl, t.kind, id, err)
				}
			}
			m, err := overlay(pr, bases[pn], t.res.MinCBMBits)
			if err == nil {
				err = checkCBM(t.res, m)
			}
			if err != nil {
				return preconditionf("class %s: %s cache id %d in partition %s (%x): %s", name, t.res.Name, id, pn, bases[pn], err)
			}
			p.values[name][t.res.Name][id] = strconv.FormatUint(m, 16)
		}
	}
	return nil
}

// pick finds the allocation for one cache id: its own key, else "all".
// Under CDP code and data fall back to unified.
func pick(c catConfig, id int, kind string) (proportion, error) {
	v, ok := lookupID(c, id)
	if !ok {
		return proportion{}, fmt.Errorf("no allocation for this cache id and no \"all\"")
	}
	switch {
	case kind == "code" && v.Code != nil:
		return *v.Code, nil
	case kind == "data" && v.Data != nil:
		return *v.Data, nil
	case v.Unified != nil:
		return *v.Unified, nil
	}
	return proportion{}, fmt.Errorf("only code and data are given, but CDP is off (mount resctrl with -o cdp, or add unified)")
}

// lookupID finds the value whose key names id, else the "all" value.
func lookupID[V any](m map[string]V, id int) (V, bool) {
	for key, v := range m {
		if key == "all" {
			continue
		}
		// Keys were checked by parseClassFile.
		ids, _ := parseIDList(key, maxDomainID)
		if slices.Contains(ids, id) {
			return v, true
		}
	}
	v, ok := m["all"]
	return v, ok
}
