package rdt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

// writeClassFile writes a class file and returns a Config naming it.
func writeClassFile(t *testing.T, yaml string) Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rdt.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return Config{ConfigFile: p}
}

// schematas returns each class's schemata as the fake kernel holds it.
func schematas(t *testing.T, h *fakeHost, c *Controller) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, class := range c.Classes() {
		_, s := h.group(t, groupDir(class))
		out[class] = s
	}
	return out
}

func domains4(spec hostSpec) hostSpec {
	spec.caches[0].Domains = []int{0, 1, 2, 3}
	spec.mb.Domains = []int{0, 1, 2, 3}
	return spec
}

func wideMBps() hostSpec {
	spec := mbpsHost()
	spec.caches[0].CBMMask = 0xfffff
	return spec
}

// Each goresctrl example gives the schemata goresctrl's arithmetic gives,
// and the fake kernel accepts every write.
func TestApplyExamples(t *testing.T) {
	full12 := "L3:0=fff;1=fff"
	for _, tc := range []struct {
		name string
		spec hostSpec
		file string
		want map[string]string
	}{
		{"percentages cat only", catOnlyHost(), goresctrlExample, map[string]string{
			"guaranteed": "L3:0=3f;1=3f",
			"burstable":  "L3:0=7c0;1=7c0",
			"besteffort": "L3:0=1c0;1=1c0",
			RootClass:    "L3:0=c0;1=c0",
		}},
		{"percentages with mba", fullHost(), goresctrlExample, map[string]string{
			"guaranteed": "L3:0=7f;1=7f\nMB:0=100;1=100",
			"burstable":  "L3:0=f80;1=f80\nMB:0=50;1=50",
			"besteffort": "L3:0=380;1=380\nMB:0=50;1=50",
			RootClass:    "L3:0=180;1=180\nMB:0=50;1=50",
		}},
		{"per cache id", domains4(fullHost()), perCacheIDExample, map[string]string{
			"guaranteed": "L3:0=7f;1=7f;2=7f;3=7f\nMB:0=100;1=100;2=100;3=100",
			"burstable":  "L3:0=f80;1=f80;2=180;3=180\nMB:0=80;1=80;2=50;3=50",
			RootClass:    "L3:0=fff;1=fff;2=fff;3=fff\nMB:0=100;1=100;2=100;3=100",
		}},
		{"bitmasks and MBps", wideMBps(), bitmaskExample, map[string]string{
			"guaranteed": "L3:0=ff000;1=ff000\nMB:0=100000;1=100000",
			"burstable":  "L3:0=ff;1=ff\nMB:0=2000;1=2000",
			"besteffort": "L3:0=f;1=f\nMB:0=1000;1=1000",
			RootClass:    "L3:0=fffff;1=fffff\nMB:0=4294967295;1=4294967295",
		}},
		{"cdp", cdpHost(), cdpExample, map[string]string{
			"app":     "L3CODE:0=7\nL3DATA:0=7e0",
			"tiny":    "L3CODE:0=1\nL3DATA:0=20",
			RootClass: "L3CODE:0=7ff\nL3DATA:0=7ff",
		}},
		{"no file", fullHost(), "", map[string]string{RootClass: full12 + "\nMB:0=100;1=100"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.spec)
			cfg := Config{}
			if tc.file != "" {
				cfg = writeClassFile(t, tc.file)
			}
			c := h.open(t, cfg)
			if diff := cmp.Diff(tc.want, schematas(t, h, c)); diff != "" {
				t.Errorf("schemata (-want +got):\n%s", diff)
			}
		})
	}
}

// A file that does not fit the hardware is refused before anything is
// written, with the kind of error and a message naming the problem.
func TestApplyValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec hostSpec
		file string
		kind error
		want string
	}{
		{"over 100%", catOnlyHost(), "partitions: {a: {l3Allocation: 60%}, b: {l3Allocation: 50%}}", errdefs.ErrInvalidArgument, "more than 100%"},
		{"non-contiguous", catOnlyHost(), "partitions: {a: {l3Allocation: '0x5'}}", errdefs.ErrFailedPrecondition, "non-consecutive"},
		{"beyond cbm_mask", catOnlyHost(), "partitions: {a: {l3Allocation: '0x800'}}", errdefs.ErrFailedPrecondition, "out of range"},
		{"min_cbm_bits", fullHost(), "partitions: {a: {l3Allocation: '0x1'}}", errdefs.ErrFailedPrecondition, "need at least 2 bits"},
		{"percentage too small", fullHost(), "partitions: {a: {l3Allocation: 5%}, b: {l3Allocation: 95%}}", errdefs.ErrFailedPrecondition, "partition a"},
		{"class outside partition", catOnlyHost(), "partitions: {a: {l3Allocation: '0xf', classes: {c: {l3Allocation: '0x1f'}}}}", errdefs.ErrFailedPrecondition, "does not fit"},
		{"overlap", catOnlyHost(), "partitions: {a: {l3Allocation: '0xf'}, b: {l3Allocation: '0x18'}}", errdefs.ErrInvalidArgument, "overlaps"},
		{"mixed", catOnlyHost(), "partitions: {a: {l3Allocation: '0xf'}, b: {l3Allocation: 50%}}", errdefs.ErrInvalidArgument, "mixes"},
		{"subset", catOnlyHost(), "partitions: {a: {l3Allocation: 50%}, b: {classes: {x: }}}", errdefs.ErrInvalidArgument, "not for all"},
		{"missing cache id", domains4(fullHost()), "partitions: {a: {l3Allocation: {0-1: 50%}}}", errdefs.ErrInvalidArgument, "cache id 2"},
		{"range for partition", catOnlyHost(), "partitions: {a: {l3Allocation: 10-50%}}", errdefs.ErrInvalidArgument, "percentage ranges"},
		{"no MBA", catOnlyHost(), "partitions: {a: {mbAllocation: [50%]}}", errdefs.ErrFailedPrecondition, "options.mb.optional"},
		{"no L2", catOnlyHost(), "partitions: {a: {l2Allocation: 50%}}", errdefs.ErrFailedPrecondition, "no L2"},
		{"percent on MBps", mbpsHost(), "partitions: {a: {mbAllocation: [50%]}}", errdefs.ErrInvalidArgument, "mba_MBps"},
		{"code only without cdp", catOnlyHost(), "partitions: {a: {l3Allocation: {all: {code: 50%, data: 50%}}}}", errdefs.ErrInvalidArgument, "CDP is off"},
		{"too many classes", fullHost(), "partitions: {a: {classes: {c1: , c2: , c3: , c4: , c5: , c6: , c7: , c8: }}}", errdefs.ErrFailedPrecondition, "needs 9 CLOSIDs"},
		{"unknown default", fullHost(), "partitions: {a: {classes: {gold: }}}", errdefs.ErrInvalidArgument, "default class silver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.spec)
			cfg := writeClassFile(t, tc.file)
			if tc.name == "unknown default" {
				cfg.DefaultClass = "silver"
			}
			_, err := open(h.mounts, cfg, h.newFS)
			if err == nil || !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v containing %q", err, tc.kind, tc.want)
			}
			if n := h.ctrlGroups(); n != 1 {
				t.Errorf("%d control groups after a refused config, want only the root", n)
			}
		})
	}
}

// Optional resources the host lacks are skipped, not errors.
func TestApplyOptional(t *testing.T) {
	h := newFakeHost(t, catOnlyHost())
	c := h.open(t, writeClassFile(t, "options: {mb: {optional: true}, l2: {optional: true}}\npartitions: {a: {mbAllocation: [50%], l2Allocation: 50%, classes: {x: }}}"))
	if diff := cmp.Diff(map[string]string{"x": "L3:0=7ff;1=7ff", RootClass: "L3:0=7ff;1=7ff"}, schematas(t, h, c)); diff != "" {
		t.Errorf("schemata (-want +got):\n%s", diff)
	}
}

// What the kernel refuses comes back with info/last_cmd_status in the error.
func TestKernelErrorContext(t *testing.T) {
	h := newFakeHost(t, fullHost())
	c := h.open(t, Config{})
	bad := &classPlan{Name: "x", Schemata: []schemaLine{{Resource: "L3", Domains: []domainValue{{0, "5"}}}}}
	err := c.applyClass(bad, false)
	if err == nil || !strings.Contains(err.Error(), "write schemata of class x") || !strings.Contains(err.Error(), "The mask 5 has non-consecutive 1-bits") || !errors.Is(err, syscall.EINVAL) {
		t.Errorf("got %v, want the kernel's reason and EINVAL", err)
	}
	for i := 0; h.ctrlGroups() < h.closids(); i++ {
		if err := h.Mkdir("other" + string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	err = c.applyClass(&classPlan{Name: "y"}, false)
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "Out of CLOSIDs") {
		t.Errorf("got %v, want ENOSPC, FailedPrecondition and Out of CLOSIDs", err)
	}
}
