package blockio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeHost has block devices vda (254:0), vdb (254:16), a partition vda1
// (254:1), a character device and a symlink to vdb.
func fakeHost() host {
	nodes := map[string]struct {
		d     devNum
		block bool
	}{
		"/dev/vda": {devNum{254, 0}, true}, "/dev/vdb": {devNum{254, 16}, true}, "/dev/vda1": {devNum{254, 1}, true},
		"/dev/null": {devNum{1, 3}, false}, "/dev/disk/by-id/virtio-data": {devNum{254, 16}, true},
	}
	return host{
		glob: func(p string) ([]string, error) {
			var out []string
			for n := range nodes {
				if ok, err := filepath.Match(p, n); err != nil {
					return nil, err
				} else if ok {
					out = append(out, n)
				}
			}
			return out, nil
		},
		stat: func(p string) (devNum, bool, error) {
			n, ok := nodes[p]
			if !ok {
				return devNum{}, false, os.ErrNotExist
			}
			return n.d, n.block, nil
		},
		isPartition: func(d devNum) bool { return d == devNum{254, 1} },
	}
}

func load(t *testing.T, yaml string) (*Classes, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "blockio.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Classes{h: fakeHost()}
	return c, c.Reload(path)
}

func u16(v uint16) *uint16 { return &v }

func throttle(maj, min int64, rate uint64) specs.LinuxThrottleDevice {
	t := specs.LinuxThrottleDevice{Rate: rate}
	t.Major, t.Minor = maj, min
	return t
}

func TestResolve(t *testing.T) {
	c, err := load(t, `
Classes:
  slow:
  - Weight: 80
  - Devices: ["/dev/vd[a-b]"]
    ThrottleReadBps: 50M
    ThrottleWriteBps: 1Mi
    ThrottleReadIOPS: 10k
    ThrottleWriteIOPS: "5000"
    Weight: 50
  - Devices: ["/dev/disk/by-id/virtio-*"]
    ThrottleReadBps: 1.5k
  fast:
  - Weight: "400"
`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Resolve("slow")
	if err != nil {
		t.Fatal(err)
	}
	wd := func(maj, min int64, w uint16) specs.LinuxWeightDevice {
		d := specs.LinuxWeightDevice{Weight: u16(w)}
		d.Major, d.Minor = maj, min
		return d
	}
	want := &specs.LinuxBlockIO{
		Weight:                  u16(80),
		WeightDevice:            []specs.LinuxWeightDevice{wd(254, 0, 50), wd(254, 16, 50)},
		ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{throttle(254, 0, 50_000_000), throttle(254, 16, 1500)},
		ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{throttle(254, 0, 1<<20), throttle(254, 16, 1<<20)},
		ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{throttle(254, 0, 10_000), throttle(254, 16, 10_000)},
		ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{throttle(254, 0, 5000), throttle(254, 16, 5000)},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("slow (-want +got):\n%s", d)
	}
	got, err = c.Resolve("fast")
	if err != nil || got.Weight == nil || *got.Weight != 400 || len(got.ThrottleReadBpsDevice) != 0 {
		t.Errorf("fast = %+v, %v", got, err)
	}
	// A fresh value each time: a caller's change does not reach the class.
	*got.Weight = 1
	if again, _ := c.Resolve("fast"); *again.Weight != 400 {
		t.Errorf("Resolve shares its result: weight now %d", *again.Weight)
	}
	if names := c.Names(); !cmp.Equal(names, []string{"fast", "slow"}) {
		t.Errorf("Names = %v", names)
	}
	_, err = c.Resolve("gold")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `"gold"`) || !strings.Contains(err.Error(), "[fast slow]") {
		t.Errorf("unknown class: %v", err)
	}
}

func TestNoClassFile(t *testing.T) {
	c := &Classes{h: fakeHost()}
	if err := c.Reload(""); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*Classes{c, nil} {
		if _, err := cl.Resolve("slow"); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), `"slow"`) {
			t.Errorf("no class file: %v", err)
		}
	}
}

func TestBadFiles(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown top field", "Classes: {}\nclasses2: {}\n", `unknown field "classes2"`},
		{"unknown entry field", "Classes:\n  a:\n  - Weigth: 10\n", `unknown field "Weigth"`},
		{"bad number", "Classes:\n  a:\n  - Weight: ten\n", `class a: entry 0: Weight "ten": not a quantity`},
		{"weight range", "Classes:\n  a:\n  - Weight: 5\n", "Weight 5: want 10..1000"},
		{"weight above", "Classes:\n  a:\n  - Weight: 1001\n", "Weight 1001: want 10..1000"},
		{"fraction", "Classes:\n  a:\n  - Devices: [/dev/vda]\n    ThrottleReadBps: \"1.5\"\n", `ThrottleReadBps "1.5": not a whole number`},
		{"negative", "Classes:\n  a:\n  - Devices: [/dev/vda]\n    ThrottleReadIOPS: -5\n", `ThrottleReadIOPS "-5": not a quantity`},
		{"milli", "Classes:\n  a:\n  - Devices: [/dev/vda]\n    ThrottleReadIOPS: 5m\n", `ThrottleReadIOPS "5m": not a quantity`},
		{"throttle without devices", "Classes:\n  a:\n  - ThrottleReadBps: 1M\n", "Throttle* values need Devices"},
		{"nothing set", "Classes:\n  a:\n  - Devices: [/dev/vda]\n", "sets nothing"},
		{"missing device", "Classes:\n  a:\n  - Devices: [/dev/sdz]\n    Weight: 10\n", `device "/dev/sdz": no such file`},
		{"glob without match", "Classes:\n  a:\n  - Devices: [\"/dev/nvme*\"]\n    Weight: 10\n", `device "/dev/nvme*": no such file`},
		{"not block", "Classes:\n  a:\n  - Devices: [/dev/null]\n    Weight: 10\n", `device "/dev/null": not a block device`},
		{"partition", "Classes:\n  a:\n  - Devices: [/dev/vda1]\n    Weight: 10\n", `device "/dev/vda1" (254:1): a partition`},
		{"relative", "Classes:\n  a:\n  - Devices: [vda]\n    Weight: 10\n", `device "vda": want an absolute path`},
		{"bad name", "Classes:\n  a/b:\n  - Weight: 10\n", `class "a/b"`},
		{"not yaml", "Classes: [\n", "block I/O class file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
}

func TestReloadKeepsClassesOnError(t *testing.T) {
	c, err := load(t, "Classes:\n  a:\n  - Weight: 100\n")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("Classes:\n  b:\n  - Weight: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(bad); err == nil {
		t.Fatal("bad file reloaded")
	}
	if _, err := c.Resolve("a"); err != nil {
		t.Errorf("class a gone after a failed reload: %v", err)
	}
	if err := c.Reload(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if err := c.Reload(""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve("a"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("after reload without a file: %v", err)
	}
}

// TestHostDevice resolves a block device of this host through the real
// stat and sysfs: the major:minor must be what /sys/block says.
func TestHostDevice(t *testing.T) {
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		want, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dev"))
		if err != nil {
			continue
		}
		if _, err := os.Stat("/dev/" + e.Name()); err != nil {
			continue
		}
		got, err := osHost.resolve([]string{"/dev/" + e.Name()})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].String() != strings.TrimSpace(string(want)) {
			t.Fatalf("/dev/%s resolved to %v, sysfs says %s", e.Name(), got, want)
		}
		if _, err := osHost.resolve([]string{"/dev/null"}); err == nil || !strings.Contains(err.Error(), "not a block device") {
			t.Errorf("/dev/null: %v", err)
		}
		return
	}
	t.Skip("no block device with a node under /dev on this host")
}

func FuzzQuantity(f *testing.F) {
	for _, s := range []string{"100", "50M", "1Mi", "1.5k", "1e3", ".5k", "18446744073709551615", "1Ei", "99E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _ = quantity(s).parse("x")
	})
}
