package initmsg

import (
	"encoding/binary"
	"fmt"
	"io"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The Config travels as configWire, whose spec holds only what the init
// reads. encoding/json, the first time a process decodes a struct type,
// builds the encoders of every type reachable from it (typeFields): for
// specs.Spec that is the whole OCI type graph (resources, hooks, five other
// platforms), 0.5–0.8 ms of a fresh init's start here, paid again by every
// container start and exec. The types below reach a small part of it. The
// JSON is the OCI spec's, field for field, so a Config written with Write
// still decodes.
type configWire struct {
	Version      int            `json:"version"`
	Role         string         `json:"role"`
	Spec         *specWire      `json:"spec"`
	Rootfs       Rootfs         `json:"rootfs"`
	DevShm       string         `json:"devShm,omitempty"`
	Seccomp      *SeccompFilter `json:"seccompFilter,omitempty"`
	Hooks        *Hooks         `json:"containerHooks,omitempty"`
	CgroupMounts []CgroupMount  `json:"cgroupMounts,omitempty"`
}

// specWire is specs.Spec without what is not the init's: Hooks (the
// launcher runs prestart, createRuntime, poststart and poststop, and hands
// the init the two kinds it runs, with their state, in Config.Hooks),
// Annotations (metadata for the runtime and tools, which can be large; the
// hooks' state carries them), and the other platforms.
type specWire struct {
	Version    string         `json:"ociVersion"`
	Process    *specs.Process `json:"process,omitempty"`
	Root       *specs.Root    `json:"root,omitempty"`
	Hostname   string         `json:"hostname,omitempty"`
	Domainname string         `json:"domainname,omitempty"`
	Mounts     []specs.Mount  `json:"mounts,omitempty"`
	Linux      *linuxWire     `json:"linux,omitempty"`
}

// linuxWire is specs.Linux without what its launcher applies before the
// init runs: Resources and CgroupsPath (the process is born in its cgroup),
// IntelRdt (placed in its class before it runs), and NetDevices (moved into
// the network namespace by the runtime).
type linuxWire struct {
	UIDMappings       []specs.LinuxIDMapping           `json:"uidMappings,omitempty"`
	GIDMappings       []specs.LinuxIDMapping           `json:"gidMappings,omitempty"`
	Sysctl            map[string]string                `json:"sysctl,omitempty"`
	Namespaces        []specs.LinuxNamespace           `json:"namespaces,omitempty"`
	Devices           []specs.LinuxDevice              `json:"devices,omitempty"`
	Seccomp           *specs.LinuxSeccomp              `json:"seccomp,omitempty"`
	RootfsPropagation string                           `json:"rootfsPropagation,omitempty"`
	MaskedPaths       []string                         `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string                         `json:"readonlyPaths,omitempty"`
	MountLabel        string                           `json:"mountLabel,omitempty"`
	MemoryPolicy      *specs.LinuxMemoryPolicy         `json:"memoryPolicy,omitempty"`
	Personality       *specs.LinuxPersonality          `json:"personality,omitempty"`
	TimeOffsets       map[string]specs.LinuxTimeOffset `json:"timeOffsets,omitempty"`
}

// WriteConfig sends cfg as one message, with only the parts of its spec
// that the init reads (see specWire and linuxWire).
func WriteConfig(w io.Writer, cfg *Config) error {
	v := cfg.Version
	if cfg.Seccomp != nil {
		v = max(v, VersionSeccompFilter)
	}
	if cfg.Hooks != nil {
		v = max(v, VersionHooks)
	}
	return Write(w, configWire{Version: v, Role: cfg.Role, Spec: toWire(cfg.Spec), Rootfs: cfg.Rootfs,
		DevShm: cfg.DevShm, Seccomp: cfg.Seccomp, Hooks: cfg.Hooks, CgroupMounts: cfg.CgroupMounts})
}

// ReadConfig receives the message WriteConfig (or Write of a Config) sent.
// The spec it returns has what specWire keeps; everything else is zero.
func ReadConfig(r io.Reader, cfg *Config) error {
	var c configWire
	if err := Read(r, &c); err != nil {
		return err
	}
	*cfg = Config{Version: c.Version, Role: c.Role, Spec: fromWire(c.Spec), Rootfs: c.Rootfs, DevShm: c.DevShm,
		Seccomp: c.Seccomp, Hooks: c.Hooks, CgroupMounts: c.CgroupMounts}
	return nil
}

func toWire(s *specs.Spec) *specWire {
	if s == nil {
		return nil
	}
	w := &specWire{Version: s.Version, Process: s.Process, Root: s.Root, Hostname: s.Hostname,
		Domainname: s.Domainname, Mounts: s.Mounts}
	if l := s.Linux; l != nil {
		w.Linux = &linuxWire{UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings, Sysctl: l.Sysctl,
			Namespaces: l.Namespaces, Devices: l.Devices, Seccomp: l.Seccomp, RootfsPropagation: l.RootfsPropagation,
			MaskedPaths: l.MaskedPaths, ReadonlyPaths: l.ReadonlyPaths, MountLabel: l.MountLabel,
			MemoryPolicy: l.MemoryPolicy, Personality: l.Personality, TimeOffsets: l.TimeOffsets}
	}
	return w
}

func fromWire(w *specWire) *specs.Spec {
	if w == nil {
		return nil
	}
	s := &specs.Spec{Version: w.Version, Process: w.Process, Root: w.Root, Hostname: w.Hostname,
		Domainname: w.Domainname, Mounts: w.Mounts}
	if l := w.Linux; l != nil {
		s.Linux = &specs.Linux{UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings, Sysctl: l.Sysctl,
			Namespaces: l.Namespaces, Devices: l.Devices, Seccomp: l.Seccomp, RootfsPropagation: l.RootfsPropagation,
			MaskedPaths: l.MaskedPaths, ReadonlyPaths: l.ReadonlyPaths, MountLabel: l.MountLabel,
			MemoryPolicy: l.MemoryPolicy, Personality: l.Personality, TimeOffsets: l.TimeOffsets}
	}
	return s
}

// SeccompFilter is a seccomp filter compiled by the launcher's caller,
// which the init loads as it is. A shim compiles a container's profile
// once and hands the program to the init of each exec, instead of every
// init decoding and compiling the profile again (~0.45 ms of a fresh
// process for the RuntimeDefault profile here).
type SeccompFilter struct {
	// Program is the classic BPF program: struct sock_filter entries, in
	// the host's byte order.
	Program []byte `json:"program"`
	// Flags are seccomp(2)'s SECCOMP_FILTER_FLAG_* for loading it.
	Flags uint `json:"flags,omitempty"`
}

// sockFilterSize is sizeof(struct sock_filter): u16 code, u8 jt, u8 jf, u32 k.
const sockFilterSize = 8

// NewSeccompFilter encodes prog for the init.
func NewSeccompFilter(prog []unix.SockFilter, flags uint) *SeccompFilter {
	b := make([]byte, 0, len(prog)*sockFilterSize)
	for _, in := range prog {
		b = binary.NativeEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return &SeccompFilter{Program: b, Flags: flags}
}

// Instructions decodes the program; the kernel checks it again at load.
func (f *SeccompFilter) Instructions() ([]unix.SockFilter, error) {
	n := len(f.Program) / sockFilterSize
	if n == 0 || len(f.Program)%sockFilterSize != 0 || n > maxBPFInstructions {
		return nil, fmt.Errorf("seccomp filter of %d bytes: not 1 to %d instructions of %d bytes", len(f.Program), maxBPFInstructions, sockFilterSize)
	}
	prog := make([]unix.SockFilter, n)
	for i := range prog {
		b := f.Program[i*sockFilterSize:]
		prog[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
	}
	return prog, nil
}

// maxBPFInstructions is the kernel's BPF_MAXINSNS.
const maxBPFInstructions = 4096
