package nri

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// emptyReply is the adjustment the adaptation answers with when no plugin
// changed anything: every part present and empty.
func emptyReply() *api.ContainerAdjustment {
	return &api.ContainerAdjustment{
		Annotations: map[string]string{}, Mounts: []*api.Mount{}, Env: []*api.KeyValue{}, Hooks: &api.Hooks{},
		Rlimits: []*api.POSIXRlimit{}, CDIDevices: []*api.CDIDevice{},
		Linux: &api.LinuxContainerAdjustment{
			Devices: []*api.LinuxDevice{},
			Resources: &api.LinuxResources{Memory: &api.LinuxMemory{}, Cpu: &api.LinuxCPU{},
				HugepageLimits: []*api.HugepageLimit{}, Unified: map[string]string{}},
			Namespaces: []*api.LinuxNamespace{}, NetDevices: map[string]*api.LinuxNetDevice{}, Sysctl: map[string]string{},
		},
	}
}

func TestAdjustEmpty(t *testing.T) {
	s := goldenSpec(t)
	if err := Adjust(s, emptyReply(), Resolvers{}); err != nil {
		t.Fatal(err)
	}
}

// TestAdjust: each adjustment NRI defines lands where runtime-tools'
// generator would put it, through crib's specGen; what crib has no way to
// express fails here, FailedPrecondition.
func TestAdjust(t *testing.T) {
	i := func(v int) *int { return &v }
	for _, tc := range []struct {
		name  string
		adj   func(a *api.ContainerAdjustment)
		res   Resolvers
		check func(t *testing.T, s *specs.Spec)
		kind  error
	}{
		{"annotations", func(a *api.ContainerAdjustment) {
			a.AddAnnotation("nri.test/a", "1")
			a.RemoveAnnotation("io.kubernetes.cri.container-type")
		}, Resolvers{}, func(t *testing.T, s *specs.Spec) {
			if s.Annotations["nri.test/a"] != "1" || s.Annotations["io.kubernetes.cri.container-type"] != "" {
				t.Errorf("annotations %v", s.Annotations)
			}
		}, nil},
		{"env replaced and removed", func(a *api.ContainerAdjustment) {
			a.AddEnv("HOSTNAME", "nri")
			a.RemoveEnv("NGINX_VERSION")
		}, Resolvers{}, func(t *testing.T, s *specs.Spec) {
			if !slices.Contains(s.Process.Env, "HOSTNAME=nri") || slices.ContainsFunc(s.Process.Env, func(e string) bool {
				return strings.HasPrefix(e, "NGINX_VERSION=") || e == "HOSTNAME=web-0"
			}) {
				t.Errorf("env %v", s.Process.Env)
			}
		}, nil},
		{"args", func(a *api.ContainerAdjustment) { a.SetArgs([]string{"/bin/sh", "-c", "true"}) }, Resolvers{},
			func(t *testing.T, s *specs.Spec) {
				if !slices.Equal(s.Process.Args, []string{"/bin/sh", "-c", "true"}) {
					t.Errorf("args %v", s.Process.Args)
				}
			}, nil},
		{"mount added and sorted, one removed", func(a *api.ContainerAdjustment) {
			a.AddMount(&api.Mount{Destination: "/a/b/c", Type: "bind", Source: "/tmp", Options: []string{"rbind", "ro"}})
			a.RemoveMount("/etc/hosts")
		}, Resolvers{}, func(t *testing.T, s *specs.Spec) {
			// Sorted by depth: parents before their children.
			at := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/a/b/c" })
			sys := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/sys" })
			if at < 0 || at < sys || slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/etc/hosts" }) {
				t.Errorf("mounts %v", s.Mounts)
			}
		}, nil},
		{"device and its cgroup rule", func(a *api.ContainerAdjustment) {
			a.AddDevice(&api.LinuxDevice{Path: "/dev/x", Type: "c", Major: 10, Minor: 200})
		}, Resolvers{}, func(t *testing.T, s *specs.Spec) {
			d := s.Linux.Devices[len(s.Linux.Devices)-1]
			r := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
			if d.Path != "/dev/x" || d.Major != 10 || !r.Allow || *r.Major != 10 || *r.Minor != 200 || r.Access != "rw" {
				t.Errorf("device %+v, rule %+v", d, r)
			}
		}, nil},
		{"cpu, memory, pids, hugepages, unified", func(a *api.ContainerAdjustment) {
			a.SetLinuxCPUSetCPUs("0-1")
			a.SetLinuxCPUSetMems("0")
			a.SetLinuxCPUShares(512)
			a.SetLinuxCPUQuota(50000)
			a.SetLinuxCPUPeriod(100000)
			a.SetLinuxMemoryLimit(1 << 30)
			a.SetLinuxPidLimits(100)
			a.AddLinuxHugepageLimit("2MB", 4<<20)
			a.AddLinuxUnified("memory.high", "max")
		}, Resolvers{}, func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if r.CPU.Cpus != "0-1" || r.CPU.Mems != "0" || *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 ||
				*r.Memory.Limit != 1<<30 || *r.Memory.Swap != 1<<30 || *r.Pids.Limit != 100 || r.Unified["memory.high"] != "max" ||
				!slices.Contains(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: "2MB", Limit: 4 << 20}) {
				t.Errorf("resources %+v", r)
			}
		}, nil},
		{"oom score", func(a *api.ContainerAdjustment) { a.SetLinuxOomScoreAdj(i(-100)) }, Resolvers{},
			func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != -100 {
					t.Errorf("oom %d", *s.Process.OOMScoreAdj)
				}
			}, nil},
		{"sysctl", func(a *api.ContainerAdjustment) { a.SetLinuxSysctl("net.ipv4.ping_group_range", "0 0") }, Resolvers{},
			func(t *testing.T, s *specs.Spec) {
				if s.Linux.Sysctl["net.ipv4.ping_group_range"] != "0 0" {
					t.Errorf("sysctl %v", s.Linux.Sysctl)
				}
			}, nil},
		{"seccomp replaced", func(a *api.ContainerAdjustment) {
			a.SetLinuxSeccompPolicy(&api.LinuxSeccomp{DefaultAction: string(specs.ActAllow)})
		}, Resolvers{}, func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp.DefaultAction != specs.ActAllow || len(s.Linux.Seccomp.Syscalls) != 0 {
				t.Errorf("seccomp %+v", s.Linux.Seccomp)
			}
		}, nil},
		{"rdt class resolved", func(a *api.ContainerAdjustment) { a.SetLinuxRDTClass("gold") },
			Resolvers{RDT: func(c string) (*specs.LinuxIntelRdt, error) { return &specs.LinuxIntelRdt{ClosID: c}, nil }},
			func(t *testing.T, s *specs.Spec) {
				if s.Linux.IntelRdt == nil || s.Linux.IntelRdt.ClosID != "gold" {
					t.Errorf("intelRdt %+v", s.Linux.IntelRdt)
				}
			}, nil},
		{"rdt class refused by the resolver", func(a *api.ContainerAdjustment) { a.SetLinuxRDTClass("tin") },
			Resolvers{RDT: func(c string) (*specs.LinuxIntelRdt, error) { return nil, errdefs.ErrInvalidArgument }}, nil, errdefs.ErrInvalidArgument},
		{"rdt class without RDT", func(a *api.ContainerAdjustment) { a.SetLinuxRDTClass("gold") }, Resolvers{}, nil, errdefs.ErrFailedPrecondition},
		{"block io class without classes", func(a *api.ContainerAdjustment) { a.SetLinuxBlockIOClass("slow") }, Resolvers{}, nil, errdefs.ErrFailedPrecondition},
		{"block io class resolved", func(a *api.ContainerAdjustment) { a.SetLinuxBlockIOClass("slow") },
			Resolvers{BlockIO: func(c string) (*specs.LinuxBlockIO, error) {
				if c != "slow" {
					return nil, fmt.Errorf("class %q: %w", c, errdefs.ErrInvalidArgument)
				}
				d := specs.LinuxThrottleDevice{Rate: 1 << 20}
				d.Major, d.Minor = 254, 0
				return &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{d}}, nil
			}},
			func(t *testing.T, s *specs.Spec) {
				b := s.Linux.Resources.BlockIO
				if b == nil || len(b.ThrottleReadBpsDevice) != 1 || b.ThrottleReadBpsDevice[0].Rate != 1<<20 || b.ThrottleReadBpsDevice[0].Major != 254 {
					t.Errorf("blockIO %+v", b)
				}
			}, nil},
		{"block io class unknown", func(a *api.ContainerAdjustment) { a.SetLinuxBlockIOClass("tin") },
			Resolvers{BlockIO: func(c string) (*specs.LinuxBlockIO, error) {
				return nil, fmt.Errorf("class %q: %w", c, errdefs.ErrInvalidArgument)
			}},
			nil, errdefs.ErrInvalidArgument},
		{"cdi without cdi", func(a *api.ContainerAdjustment) { a.AddCDIDevice(&api.CDIDevice{Name: "vendor.com/gpu=0"}) }, Resolvers{}, nil, errdefs.ErrFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := goldenSpec(t)
			a := emptyReply()
			tc.adj(a)
			err := Adjust(s, a, tc.res)
			if tc.kind != nil {
				if !errors.Is(err, tc.kind) {
					t.Fatalf("Adjust = %v, want %v", err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestMergeResources(t *testing.T) {
	l, sh := int64(100), uint64(1024)
	cur := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &l, Swap: &l}, CPU: &specs.LinuxCPU{Shares: &sh, Cpus: "0-3"}}
	got, err := MergeResources(cur, &api.LinuxResources{Memory: &api.LinuxMemory{Limit: api.Int64(200)}, Cpu: &api.LinuxCPU{Cpus: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Memory.Limit != 200 || *got.Memory.Swap != 200 || *got.CPU.Shares != 1024 || got.CPU.Cpus != "1" {
		t.Errorf("merged %+v %+v", got.Memory, got.CPU)
	}
	if *cur.Memory.Limit != 100 || cur.CPU.Cpus != "0-3" {
		t.Error("the current resources were written through")
	}
	for _, bad := range []*api.LinuxResources{
		{RdtClass: api.String("gold")}, {BlockioClass: api.String("x")},
		{Memory: &api.LinuxMemory{Kernel: api.Int64(1)}}, {Devices: []*api.LinuxDeviceCgroup{{Allow: true}}},
	} {
		if _, err := MergeResources(cur, bad); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("MergeResources(%v) = %v, want FailedPrecondition", bad, err)
		}
	}
}

// What NRI's generator would drop, or crib's cgroups do not set, is
// refused by name rather than lost.
func TestAdjustRefusesUnapplied(t *testing.T) {
	for name, r := range map[string]*api.LinuxResources{
		"memory.reservation":      {Memory: &api.LinuxMemory{Reservation: api.Int64(1 << 20)}},
		"memory.swap":             {Memory: &api.LinuxMemory{Limit: api.Int64(128 << 20), Swap: api.Int64(5 << 20)}},
		"memory.swappiness":       {Memory: &api.LinuxMemory{Swappiness: api.UInt64(0)}},
		"memory.disableOomKiller": {Memory: &api.LinuxMemory{DisableOomKiller: api.Bool(true)}},
		"memory.kernel":           {Memory: &api.LinuxMemory{Kernel: api.Int64(1)}},
		"cpu.realtimeRuntime":     {Cpu: &api.LinuxCPU{RealtimeRuntime: api.Int64(1000)}},
	} {
		adj := &api.ContainerAdjustment{Linux: &api.LinuxContainerAdjustment{Resources: r}}
		err := Adjust(goldenSpec(t), adj, Resolvers{})
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want FailedPrecondition naming it", name, err)
		}
	}
	// Swap equal to the limit is what the generator writes itself.
	adj := &api.ContainerAdjustment{Linux: &api.LinuxContainerAdjustment{Resources: &api.LinuxResources{
		Memory: &api.LinuxMemory{Limit: api.Int64(128 << 20), Swap: api.Int64(128 << 20)}}}}
	if err := Adjust(goldenSpec(t), adj, Resolvers{}); err != nil {
		t.Errorf("swap equal to the limit: %v", err)
	}
}
