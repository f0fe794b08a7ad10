package rdt

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

func TestParseMountinfo(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *Mount
	}{
		{"none", "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", nil},
		{"plain", "45 25 0:40 / /sys/fs/resctrl rw,relatime shared:25 - resctrl resctrl rw\n", &Mount{Path: "/sys/fs/resctrl"}},
		{"options", "45 25 0:40 / /sys/fs/resctrl rw - resctrl resctrl rw,cdp,cdpl2,mba_MBps\n", &Mount{Path: "/sys/fs/resctrl", CDP: true, CDPL2: true, MBAMBps: true}},
		{"escaped", `45 25 0:40 / /mnt/res\040ctrl rw - resctrl resctrl rw` + "\n", &Mount{Path: "/mnt/res ctrl"}},
		{"no optional fields", "45 25 0:40 / /r rw - resctrl none rw\n", &Mount{Path: "/r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMountinfo(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mount (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := ParseMountinfo(strings.NewReader("garbage\n")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("garbage line: got %v, want InvalidArgument", err)
	}
}

// A host without resctrl is reported, not an error, and its Info says why.
func TestDiscoverWithoutResctrl(t *testing.T) {
	c, err := Open(writeMountinfo(t, "", ""), Config{})
	if err != nil {
		t.Fatal(err)
	}
	in := c.Info()
	if c.Available() || in.Available || !strings.Contains(in.Reason, "not mounted") {
		t.Errorf("Available()=%v Info=%+v, want unavailable with a reason", c.Available(), in)
	}
	if got := c.Classes(); len(got) != 0 {
		t.Errorf("Classes() = %v, want none", got)
	}
	if _, err := Open("/nonexistent/mountinfo", Config{}); err == nil {
		t.Error("Open with an unreadable mountinfo succeeded")
	}
}

func TestDiscover(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec hostSpec
	}{
		{"cat only", catOnlyHost()},
		{"cat mba mon", fullHost()},
		{"cdp", cdpHost()},
		{"mba_MBps", mbpsHost()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.spec)
			c := h.open(t, Config{})
			in := c.Info()
			want := Info{
				Available: true,
				Mount: &Mount{Path: h.root, CDP: strings.Contains(tc.spec.mountOpts, "cdp"),
					MBAMBps: strings.Contains(tc.spec.mountOpts, "mba_MBps")},
				Caches:  tc.spec.caches,
				MB:      tc.spec.mb,
				Mon:     tc.spec.mon,
				Classes: []string{RootClass},
			}
			if want.MB != nil {
				mb := *want.MB
				mb.MBps = want.Mount.MBAMBps
				want.MB = &mb
			}
			if diff := cmp.Diff(want, in); diff != "" {
				t.Errorf("Info (-want +got):\n%s", diff)
			}
			if got, want := c.Monitoring(), tc.spec.mon != nil; got != want {
				t.Errorf("Monitoring() = %v, want %v", got, want)
			}
		})
	}
}

// A broken info/ tree is an error that names the file.
func TestDiscoverBrokenInfo(t *testing.T) {
	h := newFakeHost(t, catOnlyHost())
	h.mustWrite(t, "info/L3/cbm_mask", "zz\n")
	_, err := open(h.mounts, Config{}, h.newFS)
	if err == nil || !strings.Contains(err.Error(), "info/L3/cbm_mask") {
		t.Errorf("got %v, want an error naming info/L3/cbm_mask", err)
	}
	h.mustWrite(t, "info/L3/cbm_mask", "f0f\n")
	if _, err := open(h.mounts, Config{}, h.newFS); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("non-contiguous cbm_mask: got %v, want InvalidArgument", err)
	}
}
