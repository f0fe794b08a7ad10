package rdt

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// contiguous reports whether mask is one block of set bits (Intel CAT
// requires it; resctrl.rst, "Cache Bit Masks (CBM)").
func contiguous(mask uint64) bool {
	if mask == 0 {
		return false
	}
	m := mask >> bits.TrailingZeros64(mask)
	return m&(m+1) == 0
}

// checkCBM applies the kernel's rules for a cache bitmask (cbm_validate in
// arch/x86/kernel/cpu/resctrl/ctrlmondata.c) and words its errors the same
// way, so a config error reads like the kernel's last_cmd_status would.
func checkCBM(c *CacheInfo, mask uint64) error {
	if mask == 0 || mask&^c.CBMMask != 0 {
		return fmt.Errorf("mask %x out of range (cbm_mask %x)", mask, c.CBMMask)
	}
	if !c.SparseMasks && !contiguous(mask) {
		return fmt.Errorf("the mask %x has non-consecutive 1-bits", mask)
	}
	if run := longestRun(mask); run < c.MinCBMBits {
		return fmt.Errorf("mask %x: need at least %d bits in the mask", mask, c.MinCBMBits)
	}
	return nil
}

// longestRun is the length of the longest block of set bits.
func longestRun(mask uint64) int {
	n := 0
	for mask != 0 {
		mask &= mask << 1
		n++
	}
	return n
}

// proportion is one goresctrl cache allocation: a percentage, a
// percentage range, or an absolute mask (hex or bit numbers).
type proportion struct {
	// low and high are percentages (1–100); low is 0 for a plain "N%".
	low, high int
	// mask is set for an absolute allocation.
	mask     uint64
	absolute bool
}

// parseProportion parses "60%", "20-60%", "0xff0" and "0-3" / "2,3,4".
func parseProportion(s string) (proportion, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasSuffix(s, "%"):
		body := strings.TrimSuffix(s, "%")
		lo, hi, isRange := strings.Cut(body, "-")
		if !isRange {
			hi, lo = lo, ""
		}
		h, err := parsePct(hi)
		if err != nil {
			return proportion{}, fmt.Errorf("cache proportion %q: %w", s, err)
		}
		p := proportion{high: h}
		if isRange {
			if p.low, err = parsePct(lo); err != nil {
				return proportion{}, fmt.Errorf("cache proportion %q: %w", s, err)
			}
			if p.low > p.high {
				return proportion{}, fmt.Errorf("cache proportion %q: empty range", s)
			}
		}
		return p, nil
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		m, err := strconv.ParseUint(s[2:], 16, 64)
		if err != nil || m == 0 {
			return proportion{}, fmt.Errorf("cache bitmask %q: not a non-zero 64-bit hex number", s)
		}
		return proportion{mask: m, absolute: true}, nil
	}
	ids, err := parseIDList(s, 63)
	if err != nil {
		return proportion{}, fmt.Errorf("cache bit numbers %q: %w", s, err)
	}
	var m uint64
	for _, b := range ids {
		m |= 1 << b
	}
	return proportion{mask: m, absolute: true}, nil
}

// parsePct parses a percentage 0–100 without its sign.
func parsePct(s string) (int, error) {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 || v > 100 {
		return 0, fmt.Errorf("%q is not a percentage from 0 to 100", s)
	}
	return v, nil
}

// parseIDList parses a cpuset-style list ("0,2,4,8-11") of numbers up to max.
func parseIDList(s string, max int) ([]int, error) {
	if s == "" {
		return nil, fmt.Errorf("empty list")
	}
	var out []int
	seen := map[int]bool{}
	for part := range strings.SplitSeq(s, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		lo, err := strconv.Atoi(a)
		if err != nil || lo < 0 || lo > max {
			return nil, fmt.Errorf("%q is not a number from 0 to %d", a, max)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.Atoi(b); err != nil || hi < lo || hi > max {
				return nil, fmt.Errorf("%q is not a range within 0-%d", part, max)
			}
		}
		for i := lo; i <= hi; i++ {
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	return out, nil
}

// overlay places p inside base, the mask of the enclosing partition (or the
// whole cbm_mask): a percentage takes that share of base's bits counted from
// its lowest, an absolute mask is shifted to start at base's lowest bit, as
// goresctrl does, so a class's "0x3" means "the first two ways of my
// partition". The result has at least minBits bits where base allows.
func overlay(p proportion, base uint64, minBits int) (uint64, error) {
	if !contiguous(base) {
		return 0, fmt.Errorf("base mask %x is not contiguous", base)
	}
	shift := bits.TrailingZeros64(base)
	n := bits.OnesCount64(base)
	if p.absolute {
		if bits.LeadingZeros64(p.mask) < shift {
			return 0, fmt.Errorf("mask %#x does not fit in %#x", p.mask, base)
		}
		m := p.mask << shift
		if m&^base != 0 {
			return 0, fmt.Errorf("mask %#x (%#x from bit %d) does not fit in %#x", m, p.mask, shift, base)
		}
		return m, nil
	}
	if p.high == 0 {
		return 0, fmt.Errorf("0%% of the cache cannot be allocated")
	}
	low := max(p.low, 1)
	lsb := (low - 1) * n / 100
	msb := (p.high - 1) * n / 100
	// Widen a too-small slice downwards first, then upwards, as the kernel
	// would otherwise reject it with "Need at least N bits in the mask".
	for msb-lsb+1 < minBits {
		switch {
		case lsb > 0:
			lsb--
		case msb < n-1:
			msb++
		default:
			return 0, fmt.Errorf("%d bits of %#x cannot hold min_cbm_bits %d", n, base, minBits)
		}
	}
	width := msb - lsb + 1
	return (uint64(1)<<width - 1) << (lsb + shift), nil
}
