package spec

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestNamespaces(t *testing.T) {
	const (
		POD       = criapi.NamespaceMode_POD
		CONTAINER = criapi.NamespaceMode_CONTAINER
		NODE      = criapi.NamespaceMode_NODE
		TARGET    = criapi.NamespaceMode_TARGET
	)
	in0 := baseInput()
	mnt := specs.LinuxNamespace{Type: specs.MountNamespace}
	cg := specs.LinuxNamespace{Type: specs.CgroupNamespace}
	net := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in0.NetNS}
	ipc := specs.LinuxNamespace{Type: specs.IPCNamespace, Path: in0.IPCNS}
	uts := specs.LinuxNamespace{Type: specs.UTSNamespace, Path: in0.UTSNS}
	const pausePid = "/proc/4242/ns/pid"
	for _, tc := range []struct {
		name          string
		net, pid, ipc criapi.NamespaceMode
		target        string
		// pod is the sandbox's options; nil: the container's, with pid
		// CONTAINER where the container's is TARGET.
		pod      *criapi.NamespaceOption
		mutate   func(*Input)
		want     []specs.LinuxNamespace
		hostname string
		err      errKind
	}{
		{name: "pod net+ipc, container pid", net: POD, pid: CONTAINER, ipc: POD, hostname: "web-0",
			want: []specs.LinuxNamespace{mnt, net, ipc, uts, {Type: specs.PIDNamespace}, cg}},
		{name: "shared pid", net: POD, pid: POD, ipc: POD, hostname: "web-0", mutate: func(in *Input) { in.PidNS = pausePid },
			want: []specs.LinuxNamespace{mnt, net, ipc, uts, {Type: specs.PIDNamespace, Path: pausePid}, cg}},
		{name: "target pid", net: POD, pid: TARGET, target: "abc", ipc: POD, hostname: "web-0", mutate: func(in *Input) { in.PidNS = "/proc/77/ns/pid" },
			want: []specs.LinuxNamespace{mnt, net, ipc, uts, {Type: specs.PIDNamespace, Path: "/proc/77/ns/pid"}, cg}},
		{name: "host everything", net: NODE, pid: NODE, ipc: NODE,
			want: []specs.LinuxNamespace{mnt, cg}},
		{name: "host network keeps pod ipc", net: NODE, pid: CONTAINER, ipc: POD,
			want: []specs.LinuxNamespace{mnt, ipc, {Type: specs.PIDNamespace}, cg}},
		{name: "container ipc and network are new", net: CONTAINER, pid: CONTAINER, ipc: CONTAINER,
			want: []specs.LinuxNamespace{mnt, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.PIDNamespace}, cg}},
		{name: "privileged has no cgroup namespace", net: POD, pid: CONTAINER, ipc: POD, hostname: "web-0",
			mutate: func(in *Input) { in.Sandbox.Linux.SecurityContext.Privileged = true; sc(in).Privileged = true },
			want:   []specs.LinuxNamespace{mnt, net, ipc, uts, {Type: specs.PIDNamespace}},
		},
		{name: "sandbox options when the container has none",
			mutate: func(in *Input) {
				sc(in).NamespaceOptions = nil
				in.Sandbox.Linux.SecurityContext.NamespaceOptions = &criapi.NamespaceOption{Pid: CONTAINER, Network: NODE}
			},
			want: []specs.LinuxNamespace{mnt, ipc, {Type: specs.PIDNamespace}, cg},
		},
		// A host namespace is the pod's decision: a container cannot add
		// one its pod does not have (the request's sandbox config is not
		// trusted; cri/ rebuilds Sandbox from the pod's record).
		{name: "host network in a pod that has its own", net: NODE, pid: CONTAINER, ipc: POD,
			pod: &criapi.NamespaceOption{Network: POD, Pid: CONTAINER, Ipc: POD}, err: invalid},
		{name: "host ipc in a pod that has its own", net: POD, pid: CONTAINER, ipc: NODE,
			pod: &criapi.NamespaceOption{Network: POD, Pid: CONTAINER, Ipc: POD}, err: invalid},
		{name: "host pid in a pod that shares its own", net: POD, pid: NODE, ipc: POD,
			pod: &criapi.NamespaceOption{Network: POD, Pid: POD, Ipc: POD}, err: invalid},
		{name: "host pid in a pod with a pid namespace per container", net: POD, pid: NODE, ipc: POD,
			pod: &criapi.NamespaceOption{Network: POD, Pid: CONTAINER, Ipc: POD}, err: invalid},
		{name: "pod modes in a host pod are the host's", net: POD, pid: POD, ipc: POD,
			pod:  &criapi.NamespaceOption{Network: NODE, Pid: NODE, Ipc: NODE},
			want: []specs.LinuxNamespace{mnt, cg}},
		{name: "pod pid without a path", net: POD, pid: POD, ipc: POD, err: invalid},
		{name: "target without a path", net: POD, pid: TARGET, target: "abc", ipc: POD, err: invalid},
		{name: "target without an id", net: POD, pid: TARGET, ipc: POD, mutate: func(in *Input) { in.PidNS = pausePid }, err: invalid},
		{name: "pod net without a path", net: POD, pid: CONTAINER, ipc: POD, mutate: func(in *Input) { in.NetNS = "" }, err: invalid},
		{name: "target network", net: TARGET, pid: CONTAINER, ipc: POD, err: invalid},
		{name: "target ipc", net: POD, pid: CONTAINER, ipc: TARGET, err: invalid},
		{name: "unknown mode", net: POD, pid: 17, ipc: POD, err: invalid},
		{name: "user namespace", net: POD, pid: CONTAINER, ipc: POD,
			mutate: func(in *Input) { sc(in).NamespaceOptions.UsernsOptions = &criapi.UserNamespace{Mode: POD} }, err: invalid},
		{name: "host user namespace is fine", net: POD, pid: CONTAINER, ipc: POD, hostname: "web-0",
			mutate: func(in *Input) { sc(in).NamespaceOptions.UsernsOptions = &criapi.UserNamespace{Mode: NODE} },
			want:   []specs.LinuxNamespace{mnt, net, ipc, uts, {Type: specs.PIDNamespace}, cg}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			sc(&in).NamespaceOptions = &criapi.NamespaceOption{Network: tc.net, Pid: tc.pid, Ipc: tc.ipc, TargetId: tc.target}
			pod := tc.pod
			if pod == nil {
				pod = &criapi.NamespaceOption{Network: tc.net, Pid: tc.pid, Ipc: tc.ipc}
				if tc.pid == TARGET {
					pod.Pid = CONTAINER
				}
			}
			in.Sandbox.Linux.SecurityContext.NamespaceOptions = pod
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			s, err := Container(in)
			checkErr(t, err, tc.err, "namespace")
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, s.Linux.Namespaces); diff != "" {
				t.Errorf("namespaces (-want +got):\n%s", diff)
			}
			if s.Hostname != tc.hostname {
				t.Errorf("hostname = %q, want %q", s.Hostname, tc.hostname)
			}
		})
	}
}

func TestResources(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	i := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name string
		r    *criapi.LinuxContainerResources
		want *specs.LinuxResources
		err  errKind
	}{
		{name: "none", want: &specs.LinuxResources{}},
		{
			name: "cpu, memory without swap limit, hugepages, unified",
			r: &criapi.LinuxContainerResources{
				CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, CpusetCpus: "0-1", CpusetMems: "0",
				MemoryLimitInBytes: 256 << 20,
				HugepageLimits:     []*criapi.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
				Unified:            map[string]string{"memory.high": "200000000"},
			},
			want: &specs.LinuxResources{
				CPU:            &specs.LinuxCPU{Period: u(100000), Quota: i(50000), Shares: u(512), Cpus: "0-1", Mems: "0"},
				Memory:         &specs.LinuxMemory{Limit: i(256 << 20), Swap: i(256 << 20)},
				HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
				Unified:        map[string]string{"memory.high": "200000000"},
			},
		},
		{
			name: "kubelet's swap limit",
			r:    &criapi.LinuxContainerResources{MemoryLimitInBytes: 256 << 20, MemorySwapLimitInBytes: 384 << 20},
			want: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i(256 << 20), Swap: i(384 << 20)}},
		},
		{
			name: "unlimited quota",
			r:    &criapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: -1},
			want: &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u(100000), Quota: i(-1)}},
		},
		{name: "negative shares", r: &criapi.LinuxContainerResources{CpuShares: -2}, err: invalid},
		{name: "negative memory", r: &criapi.LinuxContainerResources{MemoryLimitInBytes: -2}, err: invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resources(tc.r)
			checkErr(t, err, tc.err)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("resources (-want +got):\n%s", diff)
			}
		})
	}
	in := baseInput()
	in.Config.Linux.Resources = &criapi.LinuxContainerResources{CpuShares: 2}
	s := mustContainer(t, in)
	if s.Linux.Resources.CPU == nil || *s.Linux.Resources.CPU.Shares != 2 || s.Linux.CgroupsPath != in.CgroupsPath {
		t.Errorf("resources = %+v, cgroups path %q: not wired into the spec", s.Linux.Resources, s.Linux.CgroupsPath)
	}
}

func TestDevices(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	mode := func(m fs.FileMode) *fs.FileMode { return &m }
	u32 := func(v uint32) *uint32 { return &v }
	for _, tc := range []struct {
		name       string
		devs       []*criapi.Device
		privileged bool
		host       func() ([]specs.LinuxDevice, error)
		want       []specs.LinuxDevice
		wantRules  []specs.LinuxDeviceCgroup
		err        errKind
	}{
		{name: "none", wantRules: defaultDeviceRules()},
		{
			name: "char and block devices",
			devs: []*criapi.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rw"}, {HostPath: "/dev/sda", ContainerPath: "/dev/xvda"}},
			want: []specs.LinuxDevice{
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: mode(0o666), UID: u32(0), GID: u32(0)},
				{Path: "/dev/xvda", Type: "b", Major: 8, Minor: 0, FileMode: mode(0o660), UID: u32(0), GID: u32(6)},
			},
			wantRules: append(defaultDeviceRules(),
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i(10), Minor: i(229), Access: "rw"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i(8), Minor: i(0), Access: "rwm"}),
		},
		{
			name: "empty container path is the host path",
			devs: []*criapi.Device{{HostPath: "/dev/fuse"}},
			want: []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: mode(0o666), UID: u32(0), GID: u32(0)}},
			wantRules: append(defaultDeviceRules(),
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i(10), Minor: i(229), Access: "rwm"}),
		},
		{
			name: "privileged: host devices, every device allowed", privileged: true,
			devs: []*criapi.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse"}},
			host: func() ([]specs.LinuxDevice, error) {
				return []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}, {Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232}}, nil
			},
			want: []specs.LinuxDevice{
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: mode(0o666), UID: u32(0), GID: u32(0)},
				{Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232},
			},
			wantRules: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}},
		},
		{name: "host devices fail", privileged: true, host: func() ([]specs.LinuxDevice, error) { return nil, errors.New("boom") }, err: other},
		{name: "missing device", devs: []*criapi.Device{{HostPath: "/dev/nvidia0", ContainerPath: "/dev/nvidia0"}}, err: invalid},
		{name: "relative device", devs: []*criapi.Device{{HostPath: "dev/fuse", ContainerPath: "/dev/fuse"}}, err: invalid},
		{name: "not a device", devs: []*criapi.Device{{HostPath: "/srv/shared", ContainerPath: "/dev/x"}}, err: invalid},
		{name: "a directory of devices", devs: []*criapi.Device{{HostPath: "/dev/dri", ContainerPath: "/dev/dri"}}, err: invalid},
		{name: "bad permissions", devs: []*criapi.Device{{HostPath: "/dev/fuse", Permissions: "rwx"}}, err: invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			in.Config.Devices = tc.devs
			in.HostDevices = tc.host
			in.Sandbox.Linux.SecurityContext.Privileged = tc.privileged
			sc(&in).Privileged = tc.privileged
			s, err := Container(in)
			checkErr(t, err, tc.err)
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, s.Linux.Devices); diff != "" {
				t.Errorf("devices (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRules, s.Linux.Resources.Devices); diff != "" {
				t.Errorf("device rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSysctls(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sysctls  map[string]string
		net, ipc criapi.NamespaceMode
		want     map[string]string
		err      errKind
	}{
		{name: "none"},
		{
			name:    "namespaced ones in the pod's namespaces",
			sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1", "kernel.sem": "250 32000 32 128", "fs.mqueue.msg_max": "64", "kernel.msgmax": "8192"},
			want:    map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1", "kernel.sem": "250 32000 32 128", "fs.mqueue.msg_max": "64", "kernel.msgmax": "8192"},
		},
		{
			name:    "slash form is converted",
			sysctls: map[string]string{"net/ipv4/conf/eth0.100/forwarding": "1"},
			want:    map[string]string{"net.ipv4.conf.eth0/100.forwarding": "1"},
		},
		{name: "ipc sysctl with host network", net: criapi.NamespaceMode_NODE, sysctls: map[string]string{"kernel.shm_rmid_forced": "1"}, want: map[string]string{"kernel.shm_rmid_forced": "1"}},
		{name: "net with host network", net: criapi.NamespaceMode_NODE, sysctls: map[string]string{"net.ipv4.ip_forward": "1"}, err: invalid},
		{name: "ipc with host ipc", ipc: criapi.NamespaceMode_NODE, sysctls: map[string]string{"kernel.msgmax": "1"}, err: invalid},
		{name: "mqueue with host ipc", ipc: criapi.NamespaceMode_NODE, sysctls: map[string]string{"fs.mqueue.queues_max": "1"}, err: invalid},
		{name: "not namespaced", sysctls: map[string]string{"vm.overcommit_memory": "1"}, err: invalid},
		{name: "uts is not in kubelet's list", sysctls: map[string]string{"kernel.hostname": "x"}, err: invalid},
		{name: "dot-dot", sysctls: map[string]string{"net.ipv4..conf": "1"}, err: invalid},
		{name: "path escape", sysctls: map[string]string{"net/../../kernel/core_pattern": "|/x"}, err: invalid},
		{name: "dotted path escape", sysctls: map[string]string{"net.//.//.kernel.core_pattern": "|/x"}, err: invalid},
		{name: "empty component", sysctls: map[string]string{"net.ipv4.": "1"}, err: invalid},
		{name: "newline in value", sysctls: map[string]string{"net.ipv4.ip_forward": "1\n"}, err: invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			in.Sandbox.Linux.Sysctls = tc.sysctls
			sc(&in).NamespaceOptions.Network = tc.net
			sc(&in).NamespaceOptions.Ipc = tc.ipc
			in.Sandbox.Linux.SecurityContext.NamespaceOptions.Network = tc.net
			in.Sandbox.Linux.SecurityContext.NamespaceOptions.Ipc = tc.ipc
			s, err := Container(in)
			checkErr(t, err, tc.err, "sysctl")
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, s.Linux.Sysctl); diff != "" {
				t.Errorf("sysctls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMaskedReadonlyPaths(t *testing.T) {
	in := baseInput()
	s := mustContainer(t, in)
	if !cmp.Equal(s.Linux.MaskedPaths, defaultMaskedPaths) || !cmp.Equal(s.Linux.ReadonlyPaths, defaultReadonlyPaths) {
		t.Errorf("defaults: masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	sc(&in).MaskedPaths = []string{"/proc/kcore"}
	sc(&in).ReadonlyPaths = []string{"/proc/sys"}
	s = mustContainer(t, in)
	if !cmp.Equal(s.Linux.MaskedPaths, []string{"/proc/kcore"}) || !cmp.Equal(s.Linux.ReadonlyPaths, []string{"/proc/sys"}) {
		t.Errorf("from the security context: masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	in.Sandbox.Linux.SecurityContext.Privileged = true
	sc(&in).Privileged = true
	s = mustContainer(t, in)
	if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Errorf("privileged: masked %v readonly %v, want none", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
}

func TestPrivilegedNeedsPrivilegedSandbox(t *testing.T) {
	in := baseInput()
	sc(&in).Privileged = true
	_, err := Container(in)
	checkErr(t, err, invalid, "privileged")
}

func TestAnnotationsAndRDT(t *testing.T) {
	in := baseInput()
	in.Config.Annotations = map[string]string{"team": "web", AnnotationSandboxID: "spoofed"}
	in.RDTClass = "gold"
	s := mustContainer(t, in)
	want := map[string]string{
		"team":                     "web",
		AnnotationContainerType:    "container",
		AnnotationSandboxID:        testSandboxID,
		AnnotationSandboxName:      "web-0",
		AnnotationSandboxNamespace: "default",
		AnnotationSandboxUID:       "uid-1",
		AnnotationContainerName:    "app",
		AnnotationImageName:        "docker.io/library/busybox:1.36",
	}
	if diff := cmp.Diff(want, s.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if s.Linux.IntelRdt == nil || s.Linux.IntelRdt.ClosID != "gold" {
		t.Errorf("intelRdt = %+v, want closID gold", s.Linux.IntelRdt)
	}

	in.ImageName = ""
	in.RDTClass = RootRDTClass
	s = mustContainer(t, in)
	if s.Annotations[AnnotationImageName] != in.Config.Image.Image {
		t.Errorf("image-name = %q, want the config's image", s.Annotations[AnnotationImageName])
	}
	if s.Linux.IntelRdt == nil || s.Linux.IntelRdt.ClosID != "/" {
		t.Errorf("intelRdt = %+v, want the root CLOS \"/\"", s.Linux.IntelRdt)
	}
	in.RDTClass = ""
	if s = mustContainer(t, in); s.Linux.IntelRdt != nil {
		t.Errorf("intelRdt = %+v without a class", s.Linux.IntelRdt)
	}
}

func TestBadInput(t *testing.T) {
	for name, mutate := range map[string]func(*Input){
		"no config":         func(in *Input) { in.Config = nil },
		"no sandbox config": func(in *Input) { in.Sandbox = nil },
		"relative rootfs":   func(in *Input) { in.Rootfs = "rootfs" },
	} {
		in := baseInput()
		mutate(&in)
		_, err := Container(in)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		checkErr(t, err, invalid)
	}
}
