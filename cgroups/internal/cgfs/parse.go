package cgfs

import (
	"bytes"
	"strconv"
)

// KV returns the value of key in a flat-keyed file ("key value" lines, as
// memory.events, memory.oom_control or memory.stat), 0 when absent.
func KV(b []byte, key string) uint64 {
	var n uint64
	EachKV(b, func(k []byte, v uint64) {
		if string(k) == key {
			n = v
		}
	})
	return n
}

// EachKV calls fn for every "key value" line of a flat-keyed file
// (memory.stat, cpu.stat, memory.events) without allocating.
func EachKV(b []byte, fn func(key []byte, val uint64)) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 {
			continue
		}
		v, ok := ParseUint(line[sp+1:])
		if !ok {
			continue
		}
		fn(line[:sp], v)
	}
}

// ParseUint parses a decimal counter, ignoring surrounding white space.
func ParseUint(b []byte) (uint64, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// ParseLimit parses a v2 limit file ("max" or a number) into (value,
// limited).
func ParseLimit(b []byte) (uint64, bool, bool) {
	b = bytes.TrimSpace(b)
	if string(b) == "max" {
		return 0, false, true
	}
	v, ok := ParseUint(b)
	return v, true, ok
}

// PSILine is one parsed line of a pressure file.
type PSILine struct {
	Avg10, Avg60, Avg300 float64
	Total                uint64
}

// ParsePSI parses a pressure file:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func ParsePSI(b []byte) (some, full PSILine, ok bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		f := bytes.Fields(line)
		if len(f) != 5 {
			continue
		}
		var l PSILine
		for _, kv := range f[1:] {
			k, v, found := bytes.Cut(kv, []byte("="))
			if !found {
				return some, full, false
			}
			switch string(k) {
			case "avg10", "avg60", "avg300":
				x, err := strconv.ParseFloat(string(v), 64)
				if err != nil {
					return some, full, false
				}
				switch string(k) {
				case "avg10":
					l.Avg10 = x
				case "avg60":
					l.Avg60 = x
				default:
					l.Avg300 = x
				}
			case "total":
				t, good := ParseUint(v)
				if !good {
					return some, full, false
				}
				l.Total = t
			}
		}
		switch string(f[0]) {
		case "some":
			some, ok = l, true
		case "full":
			full = l
		}
	}
	return some, full, ok
}
