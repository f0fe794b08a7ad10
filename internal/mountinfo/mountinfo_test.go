package mountinfo

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestScan(t *testing.T) {
	in := `22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
31 22 0:27 /a\040b /mnt/with\040space rw - cgroup2 cgroup2 rw,nsdelegate
45 22 0:40 / /sys/fs/resctrl rw,relatime shared:25 - resctrl resctrl rw,cdp
`
	var got []Mount
	if err := Scan(strings.NewReader(in), []string{"cgroup", "cgroup2"}, func(m Mount) bool { got = append(got, m); return true }); err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Root: "/", Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", SuperOptions: "rw,memory"},
		{Root: "/a b", Mountpoint: "/mnt/with space", FSType: "cgroup2", SuperOptions: "rw,nsdelegate"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Scan (-want +got):\n%s", diff)
	}
	var points []string
	if err := Scan(strings.NewReader(in), nil, func(m Mount) bool { points = append(points, m.Mountpoint); return true }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/sys", "/sys/fs/cgroup/memory", "/mnt/with space", "/sys/fs/resctrl"}, points); diff != "" {
		t.Errorf("Scan of every type (-want +got):\n%s", diff)
	}
	n := 0
	if err := Scan(strings.NewReader(in), []string{"cgroup", "cgroup2"}, func(Mount) bool { n++; return false }); err != nil || n != 1 {
		t.Errorf("Scan stopped by fn: %d calls, %v", n, err)
	}
	for _, bad := range []string{"garbage\n", "1 2 3 4 - cgroup cgroup rw\n", "1 2 3 / /x - cgroup cgroup\n"} {
		if err := Scan(strings.NewReader(bad), []string{"cgroup"}, func(Mount) bool { return true }); !errors.Is(err, ErrMalformed) {
			t.Errorf("Scan(%q) accepted a malformed line", bad)
		}
	}
}

// Filter keeps the wanted lines as the kernel wrote them (escapes and
// all), so that a parser reading them back sees what it would have seen in
// the whole file, and refuses what Scan refuses.
func TestFilter(t *testing.T) {
	in := `22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
31 22 0:27 /a\040b /mnt/with\040space rw - cgroup2 cgroup2 rw,nsdelegate
45 22 0:40 / /sys/fs/resctrl rw,relatime shared:25 - resctrl resctrl rw,cdp
46 22 0:41 / /run/x rw - tmpfs tmpfs rw`
	got, err := Filter(strings.NewReader(in), []string{"cgroup", "resctrl"})
	if err != nil {
		t.Fatal(err)
	}
	want := `30 22 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
45 22 0:40 / /sys/fs/resctrl rw,relatime shared:25 - resctrl resctrl rw,cdp
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("Filter (-want +got):\n%s", diff)
	}
	var direct, filtered []Mount
	collect := func(to *[]Mount) func(Mount) bool { return func(m Mount) bool { *to = append(*to, m); return true } }
	types := []string{"cgroup", "cgroup2"}
	all, err := Filter(strings.NewReader(in), types)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(Scan(strings.NewReader(in), types, collect(&direct)), Scan(strings.NewReader(string(all)), types, collect(&filtered))); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(direct, filtered); diff != "" || len(direct) != 2 {
		t.Errorf("Scan of the filtered lines differs from Scan of the whole (-whole +filtered):\n%s", diff)
	}
	if _, err := Filter(strings.NewReader(in+"\ngarbage\n"), types); !errors.Is(err, ErrMalformed) {
		t.Errorf("Filter accepted a malformed line: %v", err)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/x\134y`: `/x\y`, `/mnt/a\040b\134c`: `/mnt/a b\c`, `/no`: "/no", `/bad\09`: `/bad\09`, `/end\04`: `/end\04`} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// A line of a type nobody asked for costs no allocation: the shim scans
// the whole host's mountinfo at its start.
func TestScanSkipsWithoutAllocating(t *testing.T) {
	line := "100 22 0:77 / /run/containers/overlay/abc rw,relatime - overlay overlay rw,lowerdir=/a:/b,upperdir=/c,workdir=/d\n"
	in := strings.Repeat(line, 200)
	allocs := testing.AllocsPerRun(20, func() {
		_ = Scan(strings.NewReader(in), []string{"cgroup"}, func(Mount) bool { return true })
	})
	if allocs > 5 { // the scanner and its buffer
		t.Errorf("Scan of 200 unwanted lines: %.0f allocations", allocs)
	}
}
