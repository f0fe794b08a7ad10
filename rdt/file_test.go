package rdt

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

func TestParseProportion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want proportion
		err  bool
	}{
		{in: "60%", want: proportion{high: 60}},
		{in: "20-60%", want: proportion{low: 20, high: 60}},
		{in: "0xff0", want: proportion{mask: 0xff0, absolute: true}},
		{in: "0-3", want: proportion{mask: 0xf, absolute: true}},
		{in: "2,3,8-9", want: proportion{mask: 0x30c, absolute: true}},
		{in: "101%", err: true},
		{in: "60-20%", err: true},
		{in: "0x", err: true},
		{in: "0x0", err: true},
		{in: "3-1", err: true},
		{in: "64", err: true},
		{in: "abc", err: true},
	} {
		got, err := parseProportion(tc.in)
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("parseProportion(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestOverlay(t *testing.T) {
	for _, tc := range []struct {
		p       proportion
		base    uint64
		minBits int
		want    uint64
		err     bool
	}{
		{proportion{high: 100}, 0x7c0, 1, 0x7c0, false},
		{proportion{high: 50}, 0x7c0, 1, 0x1c0, false},
		{proportion{low: 50, high: 100}, 0xff, 1, 0xf8, false},
		{proportion{high: 1}, 0xff, 2, 0x3, false},
		{proportion{low: 100, high: 100}, 0xff, 3, 0xe0, false},
		{proportion{mask: 0x3, absolute: true}, 0xf0, 1, 0x30, false},
		{proportion{mask: 0x1f, absolute: true}, 0xf0, 1, 0, true},
		{proportion{high: 10}, 0x3, 4, 0, true},
		{proportion{high: 0}, 0xff, 1, 0, true},
	} {
		got, err := overlay(tc.p, tc.base, tc.minBits)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("overlay(%+v, %#x, %d) = %#x, %v; want %#x, error %v", tc.p, tc.base, tc.minBits, got, err, tc.want, tc.err)
		}
	}
}

// goresctrl's documentation examples decode as documented.
func TestParseClassFileExamples(t *testing.T) {
	pct := func(h int) *proportion { return &proportion{high: h} }
	f, err := parseClassFile([]byte(goresctrlExample))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Options.L2.Optional || !f.Options.L3.Optional || !f.Options.MB.Optional {
		t.Errorf("options = %+v, want all optional", f.Options)
	}
	shared := f.Partitions["shared"]
	if diff := cmp.Diff(catConfig{"all": {Unified: pct(40)}}, shared.L3Allocation, cmp.AllowUnexported(proportion{})); diff != "" {
		t.Errorf("shared l3Allocation (-want +got):\n%s", diff)
	}
	if got := shared.MBAllocation["all"]; got != (mbValue{Pct: 50, HasPct: true}) {
		t.Errorf("shared mbAllocation = %+v", got)
	}
	if _, ok := shared.Classes["DEFAULT"]; !ok {
		t.Error("class DEFAULT missing")
	}

	f, err = parseClassFile([]byte(perCacheIDExample))
	if err != nil {
		t.Fatal(err)
	}
	l3 := f.Partitions["shared"].L3Allocation
	if diff := cmp.Diff(catConfig{"all": {Unified: pct(40)}, "2-3": {Unified: pct(20)}}, l3, cmp.AllowUnexported(proportion{})); diff != "" {
		t.Errorf("per cache id (-want +got):\n%s", diff)
	}
	b := f.Partitions["shared"].Classes["burstable"]
	if diff := cmp.Diff(catIDConfig{Unified: pct(100), Code: pct(100), Data: pct(80)}, b.L3Allocation["all"], cmp.AllowUnexported(proportion{})); diff != "" {
		t.Errorf("CDP spec (-want +got):\n%s", diff)
	}
	if got := b.MBAllocation["2-3"]; got != (mbValue{Pct: 50, HasPct: true}) {
		t.Errorf("class mbAllocation 2-3 = %+v", got)
	}

	f, err = parseClassFile([]byte(bitmaskExample))
	if err != nil {
		t.Fatal(err)
	}
	if got := *f.Partitions["exclusive"].L3Allocation["all"].Unified; got != (proportion{mask: 0xff000, absolute: true}) {
		t.Errorf("bit numbers 12-19 = %+v", got)
	}
	if got := f.Partitions["exclusive"].MBAllocation["all"]; got != (mbValue{Pct: 100, HasPct: true, MBps: 100000, HasMBps: true}) {
		t.Errorf("mb with MBps = %+v", got)
	}
	if f.Partitions["exclusive"].Classes["guaranteed"] != nil {
		t.Error("empty class guaranteed: want nil (100% of its partition)")
	}
}

// Errors name what is wrong; unknown fields are errors, not ignored.
func TestParseClassFileErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"unknown top field", "partition: {}\n", `unknown field "partition"`},
		{"unknown class field", "partitions: {p: {classes: {c: {l3Schema: 50%}}}}\n", `unknown field "l3Schema"`},
		{"unknown cdp field", "partitions: {p: {l3Allocation: {all: {unified: 50%, cod: 10%}}}}\n", `unknown field "cod"`},
		{"code without data", "partitions: {p: {l3Allocation: {all: {code: 50%}}}}\n", "code and data must be given together"},
		{"bad percentage", "partitions: {p: {l3Allocation: 150%}}\n", "150%"},
		{"bad mb", "partitions: {p: {mbAllocation: [50]}}\n", "[50]"},
		{"two percentages", "partitions: {p: {mbAllocation: [50%, 60%]}}\n", `"60%"`},
		{"bad cache ids", "partitions: {p: {l3Allocation: {x1: 50%}}}\n", `"x1"`},
		{"overlapping cache ids", "partitions: {p: {l3Allocation: {0-2: 50%, 2: 10%}}}\n", "cache id 2"},
		{"slash in class", "partitions: {p: {classes: {a/b: }}}\n", "contains '/'"},
		{"dotdot in class", "partitions: {p: {classes: {a..b: }}}\n", "'..'"},
		{"duplicate class", "partitions: {p: {classes: {a: }}, q: {classes: {a: }}}\n", "class a is in partitions p and q"},
		{"empty partition", "partitions: {p: }\n", "partition p is empty"},
		{"not yaml", "partitions: [\n", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseClassFile([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%v is not InvalidArgument", err)
			}
		})
	}
}

// FuzzParseClassFile: any input either fails cleanly or yields a file
// whose allocations resolve on a real host shape without panicking, and
// whose schemata the kernel-like parser reads back.
func FuzzParseClassFile(f *testing.F) {
	for _, s := range []string{goresctrlExample, perCacheIDExample, bitmaskExample, cdpExample,
		"partitions: {p: {l3Allocation: 0x7, classes: {c: {l3Allocation: 20-60%}}}}\n",
		"partitions: {p: {l3Allocation: {0: 0-3, all: 50%}}}\n"} {
		f.Add(s)
	}
	in := &Info{Available: true, Mount: &Mount{},
		Caches: []CacheInfo{{Name: "L3", CBMMask: 0xfff, MinCBMBits: 2, NumCLOSIDs: 16, Domains: []int{0, 1}}},
		MB:     &MBInfo{BandwidthGran: 10, MinBandwidth: 10, NumCLOSIDs: 8, Domains: []int{0, 1}}}
	f.Fuzz(func(t *testing.T, s string) {
		cf, err := parseClassFile([]byte(s))
		if err != nil {
			return
		}
		plans, err := makePlan(in, cf)
		if err != nil {
			return
		}
		for name, p := range plans {
			text := p.schemataText()
			lines, err := parseSchemata(text)
			if err != nil {
				t.Fatalf("class %s: schemata %q does not parse: %v", name, text, err)
			}
			if got := formatSchemata(lines); got != text {
				t.Fatalf("class %s: schemata %q reformats as %q", name, text, got)
			}
			for _, l := range lines {
				c := in.cache(l.Resource)
				for _, d := range l.Domains {
					if c == nil {
						continue
					}
					var m uint64
					if _, err := fmtSscanHex(d.Value, &m); err != nil || checkCBM(c, m) != nil {
						t.Fatalf("class %s: %s=%s is not a valid mask", name, l.Resource, d.Value)
					}
				}
			}
		}
	})
}

// FuzzParseSchemata: the schemata parser never panics and what it accepts
// survives a format/parse round trip.
func FuzzParseSchemata(f *testing.F) {
	for _, s := range []string{"L3:0=7ff;1=7ff\n", "    MB:0=100;1=50\n L3CODE:0=f\n", "L3:0=\n", ":\n", "L2:0=3;0=3\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines, err := parseSchemata(s)
		if err != nil {
			return
		}
		again, err := parseSchemata(formatSchemata(lines))
		if err != nil {
			t.Fatalf("formatted %q does not parse: %v", formatSchemata(lines), err)
		}
		if formatSchemata(again) != formatSchemata(lines) {
			t.Fatalf("round trip changed %q", s)
		}
	})
}

const goresctrlExample = `
options:
  l2:
    optional: true
  l3:
    optional: true
  mb:
    optional: true
partitions:
  exclusive:
    l2Allocation: "80%"
    l3Allocation: "60%"
    mbAllocation: ["100%"]
    classes:
      guaranteed:
        l2Allocation: "100%"
        l3Allocation: "100%"
  shared:
    l2Allocation: "20%"
    l3Allocation: "40%"
    mbAllocation: ["50%"]
    classes:
      burstable:
        l2Allocation: "100%"
        l3Allocation: "100%"
      besteffort:
        l2Allocation: "100%"
        l3Allocation: "50%"
      DEFAULT:
        l2Allocation: "50%"
        l3Allocation: "30%"
`

const perCacheIDExample = `
partitions:
  exclusive:
    l3Allocation: "60%"
    mbAllocation: ["100%"]
    classes:
      guaranteed:
  shared:
    l3Allocation:
      all: "40%"
      2-3: "20%"
    mbAllocation: ["100%"]
    classes:
      burstable:
        l3Allocation:
          all:
            unified: "100%"
            code: "100%"
            data: "80%"
        mbAllocation:
          all: ["80%"]
          2-3: ["50%"]
`

const bitmaskExample = `
partitions:
  exclusive:
    l3Allocation: "12-19"
    mbAllocation: ["100%", "100000MBps"]
    classes:
      guaranteed:
  shared:
    l3Allocation: "0xff"
    mbAllocation: ["50%", "2000MBps"]
    classes:
      burstable:
      besteffort:
        l3Allocation: "50%"
        mbAllocation: ["50%", "1000MBps"]
`

const cdpExample = `
partitions:
  all:
    l3Allocation:
      all:
        unified: "100%"
        code: "0-5"
        data: "0x7e0"
    classes:
      app:
        l3Allocation:
          all: {unified: "50%", code: "50%", data: "100%"}
      tiny:
        l3Allocation: "0x1"
`

func fmtSscanHex(s string, m *uint64) (int, error) { return fmt.Sscanf(s, "%x", m) }
