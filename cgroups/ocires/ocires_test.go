package ocires

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/cgroups"
)

func ptr[T any](v T) *T { return &v }

func TestConvert(t *testing.T) {
	r, err := Convert(&specs.LinuxResources{
		CPU:            &specs.LinuxCPU{Shares: ptr(uint64(1024)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Cpus: "0-1"},
		Memory:         &specs.LinuxMemory{Limit: ptr(int64(256 << 20)), Swap: ptr(int64(512 << 20))},
		Pids:           &specs.LinuxPids{Limit: ptr(int64(0))},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if *r.CPUWeight != 39 || r.CPUMax.QuotaMicros != 50000 || r.CPUMax.PeriodMicros != 100000 || r.CpusetCPUs != "0-1" {
		t.Errorf("cpu: %+v %+v", r, r.CPUMax)
	}
	if *r.MemoryMaxBytes != 256<<20 || *r.MemorySwapMaxBytes != 256<<20 {
		t.Errorf("memory %d swap %d, want 256 MiB each (memory+swap 512 MiB)", *r.MemoryMaxBytes, *r.MemorySwapMaxBytes)
	}
	if *r.PidsMax != -1 || r.HugetlbMaxBytes["2MB"] != 4<<20 {
		t.Errorf("pids %d hugetlb %v", *r.PidsMax, r.HugetlbMaxBytes)
	}
	if r, err := Convert(nil); r != nil || err != nil {
		t.Errorf("Convert(nil) = %v, %v", r, err)
	}
}

func TestConvertRejects(t *testing.T) {
	_, err := Convert(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(256 << 20)), Swap: ptr(int64(1 << 20))}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("memory+swap below memory: %v", err)
	}
	_, err = Convert(&specs.LinuxResources{Unified: map[string]string{"../escape": "1"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad unified key: %v", err)
	}
}

func TestConvertDevices(t *testing.T) {
	r, err := Convert(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr(int64(136)), Access: "wr"},
		{Allow: true, Type: "b", Major: ptr(int64(8)), Minor: ptr(int64(0))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []cgroups.DeviceRule{
		{Allow: false, Type: 'a', Major: -1, Minor: -1, Access: "rwm"},
		{Allow: true, Type: 'c', Major: 1, Minor: 3, Access: "rwm"},
		{Allow: true, Type: 'c', Major: 136, Minor: -1, Access: "rw"},
		{Allow: true, Type: 'b', Major: 8, Minor: 0, Access: "rwm"},
	}
	if d := cmp.Diff(want, r.Devices); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	// Present but empty: deny every device; absent: leave them alone.
	if r, err := Convert(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{}}); err != nil || r.Devices == nil || len(r.Devices) != 0 {
		t.Errorf("empty list: %+v, %v", r, err)
	}
	if r, err := Convert(&specs.LinuxResources{}); err != nil || r.Devices != nil {
		t.Errorf("no list: %+v, %v", r, err)
	}
	for _, bad := range []specs.LinuxDeviceCgroup{
		{Allow: true, Type: "char", Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwx"},
	} {
		if _, err := Convert(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{bad}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("rule %+v: err %v, want InvalidArgument", bad, err)
		}
	}
}

func TestConvertBlockIO(t *testing.T) {
	dev := func(maj, min int64, rate uint64) specs.LinuxThrottleDevice {
		d := specs.LinuxThrottleDevice{Rate: rate}
		d.Major, d.Minor = maj, min
		return d
	}
	wd := specs.LinuxWeightDevice{Weight: ptr(uint16(50))}
	wd.Major = 8
	r, err := Convert(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
		Weight: ptr(uint16(80)), WeightDevice: []specs.LinuxWeightDevice{wd},
		ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{dev(254, 0, 100), dev(8, 0, 7)},
		ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{dev(254, 0, 5)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := &cgroups.BlockIO{Weight: 80, WeightDevices: []cgroups.DeviceWeight{{Major: 8, Weight: 50}},
		Throttles: []cgroups.DeviceThrottle{{Major: 254, ReadBps: ptr(uint64(100)), WriteIOPS: ptr(uint64(5))}, {Major: 8, ReadBps: ptr(uint64(7))}}}
	if d := cmp.Diff(want, r.BlockIO); d != "" {
		t.Errorf("blockIO (-want +got):\n%s", d)
	}
	for name, b := range map[string]*specs.LinuxBlockIO{
		"leaf weight": {LeafWeight: ptr(uint16(10))},
		"weight 5":    {Weight: ptr(uint16(5))},
		"weight 0":    {Weight: ptr(uint16(0))},
	} {
		if _, err := Convert(&specs.LinuxResources{BlockIO: b}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
