package initmsg

import (
	"io"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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
	Version int       `json:"version"`
	Role    string    `json:"role"`
	Spec    *specWire `json:"spec"`
	Rootfs  Rootfs    `json:"rootfs"`
	DevShm  string    `json:"devShm,omitempty"`
}

// specWire is specs.Spec without what is not the init's: Hooks (run by the
// runtime around the init, never by it), Annotations (metadata for the
// runtime and tools, which can be large), and the other platforms.
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
	return Write(w, configWire{Version: cfg.Version, Role: cfg.Role, Spec: toWire(cfg.Spec), Rootfs: cfg.Rootfs, DevShm: cfg.DevShm})
}

// ReadConfig receives the message WriteConfig (or Write of a Config) sent.
// The spec it returns has what specWire keeps; everything else is zero.
func ReadConfig(r io.Reader, cfg *Config) error {
	var c configWire
	if err := Read(r, &c); err != nil {
		return err
	}
	*cfg = Config{Version: c.Version, Role: c.Role, Spec: fromWire(c.Spec), Rootfs: c.Rootfs, DevShm: c.DevShm}
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
