package initmsg

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The Config travels as configWire, whose spec holds only what the init
// reads: not the whole OCI type graph (resources, hooks, five other
// platforms). What a container seldom has (hooks, a seccomp profile the
// launcher did not compile, id mappings, a scheduler or I/O priority, …)
// travels raw (json.RawMessage), so that the launcher encodes it only when
// it is there. The JSON is the OCI spec's, field for field, so a Config
// written with Write still decodes. The init decodes it without building
// reflected decoders (decode.go).
type configWire struct {
	Version      int             `json:"version"`
	Role         string          `json:"role"`
	Spec         *specWire       `json:"spec"`
	Rootfs       Rootfs          `json:"rootfs"`
	DevShm       string          `json:"devShm,omitempty"`
	Seccomp      *SeccompFilter  `json:"seccompFilter,omitempty"`
	Hooks        json.RawMessage `json:"containerHooks,omitempty"` // *Hooks
	CgroupMounts []CgroupMount   `json:"cgroupMounts,omitempty"`
}

// specWire is specs.Spec without what is not the init's: Hooks (the
// launcher runs prestart, createRuntime, poststart and poststop, and hands
// the init the two kinds it runs, with their state, in Config.Hooks),
// Annotations (metadata for the runtime and tools, which can be large; the
// hooks' state carries them), and the other platforms.
type specWire struct {
	Version    string       `json:"ociVersion"`
	Process    *processWire `json:"process,omitempty"`
	Root       *specs.Root  `json:"root,omitempty"`
	Hostname   string       `json:"hostname,omitempty"`
	Domainname string       `json:"domainname,omitempty"`
	Mounts     []mountWire  `json:"mounts,omitempty"`
	Linux      *linuxWire   `json:"linux,omitempty"`
}

// processWire is specs.Process with its seldom-set parts raw.
type processWire struct {
	Terminal        bool                     `json:"terminal,omitempty"`
	ConsoleSize     *specs.Box               `json:"consoleSize,omitempty"`
	User            specs.User               `json:"user"`
	Args            []string                 `json:"args,omitempty"`
	CommandLine     string                   `json:"commandLine,omitempty"`
	Env             []string                 `json:"env,omitempty"`
	Cwd             string                   `json:"cwd"`
	Capabilities    *specs.LinuxCapabilities `json:"capabilities,omitempty"`
	Rlimits         []specs.POSIXRlimit      `json:"rlimits,omitempty"`
	NoNewPrivileges bool                     `json:"noNewPrivileges,omitempty"`
	ApparmorProfile string                   `json:"apparmorProfile,omitempty"`
	OOMScoreAdj     *int                     `json:"oomScoreAdj,omitempty"`
	Scheduler       json.RawMessage          `json:"scheduler,omitempty"` // *specs.Scheduler
	SelinuxLabel    string                   `json:"selinuxLabel,omitempty"`
	IOPriority      json.RawMessage          `json:"ioPriority,omitempty"`      // *specs.LinuxIOPriority
	ExecCPUAffinity json.RawMessage          `json:"execCPUAffinity,omitempty"` // *specs.CPUAffinity
}

// mountWire is specs.Mount with its id mappings raw.
type mountWire struct {
	Destination string          `json:"destination"`
	Type        string          `json:"type,omitempty"`
	Source      string          `json:"source,omitempty"`
	Options     []string        `json:"options,omitempty"`
	UIDMappings json.RawMessage `json:"uidMappings,omitempty"` // []specs.LinuxIDMapping
	GIDMappings json.RawMessage `json:"gidMappings,omitempty"` // []specs.LinuxIDMapping
}

// linuxWire is specs.Linux without what its launcher applies before the
// init runs: Resources and CgroupsPath (the process is born in its cgroup),
// IntelRdt (placed in its class before it runs), and NetDevices (moved into
// the network namespace by the runtime).
type linuxWire struct {
	UIDMappings       json.RawMessage        `json:"uidMappings,omitempty"` // []specs.LinuxIDMapping
	GIDMappings       json.RawMessage        `json:"gidMappings,omitempty"` // []specs.LinuxIDMapping
	Sysctl            map[string]string      `json:"sysctl,omitempty"`
	Namespaces        []specs.LinuxNamespace `json:"namespaces,omitempty"`
	Devices           []specs.LinuxDevice    `json:"devices,omitempty"`
	Seccomp           json.RawMessage        `json:"seccomp,omitempty"` // *specs.LinuxSeccomp
	RootfsPropagation string                 `json:"rootfsPropagation,omitempty"`
	MaskedPaths       []string               `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string               `json:"readonlyPaths,omitempty"`
	MountLabel        string                 `json:"mountLabel,omitempty"`
	MemoryPolicy      json.RawMessage        `json:"memoryPolicy,omitempty"` // *specs.LinuxMemoryPolicy
	Personality       json.RawMessage        `json:"personality,omitempty"`  // *specs.LinuxPersonality
	TimeOffsets       json.RawMessage        `json:"timeOffsets,omitempty"`  // map[string]specs.LinuxTimeOffset
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
	c := configWire{Version: v, Role: cfg.Role, Rootfs: cfg.Rootfs, DevShm: cfg.DevShm, Seccomp: cfg.Seccomp,
		CgroupMounts: cfg.CgroupMounts}
	var err error
	if c.Spec, err = toWire(cfg.Spec); err != nil {
		return err
	}
	if c.Hooks, err = raw(cfg.Hooks, cfg.Hooks == nil); err != nil {
		return err
	}
	return Write(w, c)
}

// ReadConfig receives the message WriteConfig (or Write of a Config) sent.
// The spec it returns has what specWire keeps; everything else is zero.
func ReadConfig(r io.Reader, cfg *Config) error {
	data, err := readFrame(r)
	if err != nil {
		return err
	}
	return decodeConfig(data, cfg)
}

// raw encodes v for a raw field of the wire types: nothing when empty.
// It runs in the launcher, whose encoders are built once.
func raw(v any, empty bool) (json.RawMessage, error) {
	if empty {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode init message: %w", err)
	}
	return b, nil
}

func toWire(s *specs.Spec) (*specWire, error) {
	if s == nil {
		return nil, nil
	}
	w := &specWire{Version: s.Version, Root: s.Root, Hostname: s.Hostname, Domainname: s.Domainname}
	var errs []error
	add := func(b json.RawMessage, err error) json.RawMessage {
		errs = append(errs, err)
		return b
	}
	if p := s.Process; p != nil {
		w.Process = &processWire{Terminal: p.Terminal, ConsoleSize: p.ConsoleSize, User: p.User, Args: p.Args,
			CommandLine: p.CommandLine, Env: p.Env, Cwd: p.Cwd, Capabilities: p.Capabilities, Rlimits: p.Rlimits,
			NoNewPrivileges: p.NoNewPrivileges, ApparmorProfile: p.ApparmorProfile, OOMScoreAdj: p.OOMScoreAdj,
			SelinuxLabel:    p.SelinuxLabel,
			Scheduler:       add(raw(p.Scheduler, p.Scheduler == nil)),
			IOPriority:      add(raw(p.IOPriority, p.IOPriority == nil)),
			ExecCPUAffinity: add(raw(p.ExecCPUAffinity, p.ExecCPUAffinity == nil))}
	}
	for _, m := range s.Mounts {
		w.Mounts = append(w.Mounts, mountWire{Destination: m.Destination, Type: m.Type, Source: m.Source, Options: m.Options,
			UIDMappings: add(raw(m.UIDMappings, len(m.UIDMappings) == 0)),
			GIDMappings: add(raw(m.GIDMappings, len(m.GIDMappings) == 0))})
	}
	if l := s.Linux; l != nil {
		w.Linux = &linuxWire{Sysctl: l.Sysctl, Namespaces: l.Namespaces, Devices: l.Devices,
			RootfsPropagation: l.RootfsPropagation, MaskedPaths: l.MaskedPaths, ReadonlyPaths: l.ReadonlyPaths,
			MountLabel:   l.MountLabel,
			UIDMappings:  add(raw(l.UIDMappings, len(l.UIDMappings) == 0)),
			GIDMappings:  add(raw(l.GIDMappings, len(l.GIDMappings) == 0)),
			Seccomp:      add(raw(l.Seccomp, l.Seccomp == nil)),
			MemoryPolicy: add(raw(l.MemoryPolicy, l.MemoryPolicy == nil)),
			Personality:  add(raw(l.Personality, l.Personality == nil)),
			TimeOffsets:  add(raw(l.TimeOffsets, len(l.TimeOffsets) == 0))}
	}
	return w, errors.Join(errs...)
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
