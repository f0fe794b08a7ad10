package spec

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func adjustedBase(t *testing.T) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile("testdata/pod_container.json")
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// TestCheckAdjusted: every adjustment NRI defines is either accepted or
// refused with the field named, never dropped.
func TestCheckAdjusted(t *testing.T) {
	stat := func(p string) (HostFile, error) {
		if p == "/host/data" {
			return HostFile{IsDir: true}, nil
		}
		return HostFile{}, fs.ErrNotExist
	}
	i := func(v int) *int { return &v }
	for _, tc := range []struct {
		name       string
		privileged bool
		edit       func(s *specs.Spec)
		kind       error // nil: accepted
		words      string
	}{
		{"nothing", false, func(*specs.Spec) {}, nil, ""},
		{"env, args, annotations", false, func(s *specs.Spec) {
			s.Process.Env = append(s.Process.Env, "A=b")
			s.Process.Args = []string{"/bin/true"}
			s.Annotations["x"] = "y"
		}, nil, ""},
		{"bind mount", false, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/host/data", Options: []string{"rbind", "ro"}})
		}, nil, ""},
		{"tmpfs mount", false, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs"})
		}, nil, ""},
		{"missing bind source", false, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/host/none", Options: []string{"rbind"}})
		}, errdefs.ErrInvalidArgument, `"/host/none" does not exist`},
		{"relative destination", false, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "data", Type: "tmpfs", Source: "tmpfs"})
		}, errdefs.ErrInvalidArgument, "must be absolute"},
		{"shared mount", false, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/host/data", Options: []string{"rbind", "rshared"}})
		}, errdefs.ErrInvalidArgument, "privileged"},
		{"shared mount, privileged", true, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/host/data", Options: []string{"rbind", "rshared"}})
			s.Linux.RootfsPropagation = "rshared"
		}, nil, ""},
		{"device", false, func(s *specs.Spec) {
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/x", Type: "c", Major: 1, Minor: 3})
		}, nil, ""},
		{"device outside /dev", false, func(s *specs.Spec) {
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/etc/x", Type: "c", Major: 1, Minor: 3})
		}, errdefs.ErrInvalidArgument, "under /dev"},
		{"rlimit", false, func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_CORE", Hard: 10, Soft: 5})
		}, nil, ""},
		{"unknown rlimit", false, func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_FOO"})
		}, errdefs.ErrInvalidArgument, "RLIMIT_FOO"},
		{"soft above hard", false, func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_CORE", Hard: 1, Soft: 5})
		}, errdefs.ErrInvalidArgument, "above its hard limit"},
		{"oom score", false, func(s *specs.Spec) { s.Process.OOMScoreAdj = i(-999) }, nil, ""},
		{"oom score out of range", false, func(s *specs.Spec) { s.Process.OOMScoreAdj = i(1001) }, errdefs.ErrInvalidArgument, "oomScoreAdj 1001"},
		{"namespaced sysctl", false, func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
		}, nil, ""},
		{"node sysctl", false, func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"vm.swappiness": "1"} }, errdefs.ErrInvalidArgument, "vm.swappiness"},
		{"seccomp", false, func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}}
		}, nil, ""},
		{"seccomp notify", false, func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock",
				Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}}
		}, errdefs.ErrFailedPrecondition, "SCMP_ACT_NOTIFY"},
		{"hooks", false, func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/true"}}}
		}, nil, ""},
		{"relative hook", false, func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "bin/hook"}}}
		}, errdefs.ErrInvalidArgument, "bin/hook"},
		{"root propagation not recursive", false, func(s *specs.Spec) { s.Linux.RootfsPropagation = "shared" }, errdefs.ErrInvalidArgument, `"shared"`},
		{"root propagation slave", false, func(s *specs.Spec) { s.Linux.RootfsPropagation = "slave" }, errdefs.ErrInvalidArgument, `"slave"`},
		{"root propagation rslave", false, func(s *specs.Spec) { s.Linux.RootfsPropagation = "rslave" }, nil, ""},
		{"cgroups path", false, func(s *specs.Spec) { s.Linux.CgroupsPath = "/else" }, errdefs.ErrFailedPrecondition, "linux.cgroupsPath"},
		{"namespaces", false, func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		}, errdefs.ErrFailedPrecondition, "linux.namespaces"},
		{"net devices", false, func(s *specs.Spec) {
			s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth9": {Name: "eth1"}}
		}, errdefs.ErrFailedPrecondition, "linux.netDevices"},
		{"io priority", false, func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE}
		}, errdefs.ErrFailedPrecondition, "process.ioPriority"},
		{"scheduler", false, func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch}
		}, errdefs.ErrFailedPrecondition, "process.scheduler"},
		{"memory policy", false, func(s *specs.Spec) {
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0"}
		}, errdefs.ErrFailedPrecondition, "linux.memoryPolicy"},
		{"rdt schemata", false, func(s *specs.Spec) {
			s.Linux.IntelRdt = &specs.LinuxIntelRdt{Schemata: []string{"L3:0=f"}}
		}, errdefs.ErrFailedPrecondition, "schemata"},
		{"block io", false, func(s *specs.Spec) {
			w := uint16(100)
			s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{Weight: &w}
		}, errdefs.ErrFailedPrecondition, "blockIO"},
		{"resources", false, func(s *specs.Spec) {
			l := int64(1 << 30)
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &l, Swap: &l}
			s.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "0", Mems: "0"}
		}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := adjustedBase(t)
			after := adjustedBase(t)
			tc.edit(after)
			err := CheckAdjusted(before, after, AdjustedInput{Privileged: tc.privileged, Stat: stat})
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("got %v, want %v naming %q", err, tc.kind, tc.words)
			}
		})
	}
}

// A plugin sets blockIO only through a class: what the class resolved to
// passes, anything else is refused naming the field.
func TestCheckAdjustedBlockIOClass(t *testing.T) {
	w, other := uint16(100), uint16(200)
	class := &specs.LinuxBlockIO{Weight: &w}
	before := adjustedBase(t)
	after := adjustedBase(t)
	after.Linux.Resources.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	if err := CheckAdjusted(before, after, AdjustedInput{BlockIO: class}); err != nil {
		t.Fatalf("the class's settings refused: %v", err)
	}
	after.Linux.Resources.BlockIO = &specs.LinuxBlockIO{Weight: &other}
	err := CheckAdjusted(before, after, AdjustedInput{BlockIO: class})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "linux.resources.blockIO") {
		t.Fatalf("settings other than the class's: %v", err)
	}
}
