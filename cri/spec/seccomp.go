package spec

import (
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The deprecated seccomp_profile_path spellings (kubelet's annotations).
const (
	seccompUnconfined     = "unconfined"
	seccompRuntimeDefault = "runtime/default"
	seccompDockerDefault  = "docker/default"
	seccompLocalhostPre   = "localhost/"
)

// SeccompRef is a pod's or container's seccomp choice in the deprecated
// path form, which needs no CRI type and so is what a pod record keeps:
// "" (none: unconfined), "unconfined", "runtime/default" or
// "localhost/<absolute path>". The profile field wins over the path.
func SeccompRef(p *criapi.SecurityProfile, legacy string) string {
	if p == nil {
		return legacy
	}
	switch p.GetProfileType() {
	case criapi.SecurityProfile_RuntimeDefault:
		return seccompRuntimeDefault
	case criapi.SecurityProfile_Unconfined:
		return seccompUnconfined
	case criapi.SecurityProfile_Localhost:
		return seccompLocalhostPre + p.GetLocalhostRef()
	}
	return legacy
}

// SeccompProfile is SeccompRef's inverse, for rebuilding a pod's config
// from its record; nil for "".
func SeccompProfile(ref string) *criapi.SecurityProfile {
	switch {
	case ref == "":
		return nil
	case ref == seccompUnconfined:
		return &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Unconfined}
	case strings.HasPrefix(ref, seccompLocalhostPre):
		return &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(ref, seccompLocalhostPre)}
	}
	return &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}
}

// CheckSeccompRef refuses, at RunPodSandbox, a pod-level choice that every
// CreateContainer of the pod would refuse: a form not known, a Localhost
// path that is not absolute. Whether the file exists is decided at
// CreateContainer, which reads it.
func CheckSeccompRef(ref string) error {
	switch {
	case ref == "", ref == seccompUnconfined, ref == seccompRuntimeDefault, ref == seccompDockerDefault:
		return nil
	case strings.HasPrefix(ref, seccompLocalhostPre):
		if p := strings.TrimPrefix(ref, seccompLocalhostPre); !path.IsAbs(p) {
			return invalidf("seccomp localhost profile %q: not an absolute path", p)
		}
		return nil
	}
	return invalidf("seccomp profile %q: not unconfined, runtime/default or localhost/<path>", ref)
}

// seccomp returns the container's filter, nil for none. The container's
// choice wins; without one the pod's applies. A privileged container runs
// without a filter whatever either says: the CRI defines privileged so.
// caps is the container's bounding set, which decides the RuntimeDefault
// rules and a Localhost profile's capability conditions.
func seccomp(in Input, caps []string) (*specs.LinuxSeccomp, error) {
	sc := in.Config.GetLinux().GetSecurityContext()
	if sc.GetPrivileged() {
		return nil, nil
	}
	ref := SeccompRef(sc.GetSeccomp(), sc.GetSeccompProfilePath())
	if ref == "" {
		psc := in.Sandbox.GetLinux().GetSecurityContext()
		ref = SeccompRef(psc.GetSeccomp(), psc.GetSeccompProfilePath())
	}
	switch {
	case ref == "" || ref == seccompUnconfined:
		return nil, nil
	case ref == seccompRuntimeDefault || ref == seccompDockerDefault:
		return defaultProfile(caps), nil
	case strings.HasPrefix(ref, seccompLocalhostPre):
		return localhostProfile(in, strings.TrimPrefix(ref, seccompLocalhostPre), caps)
	}
	return nil, invalidf("seccomp profile %q: not unconfined, runtime/default or localhost/<path>", ref)
}

// localhostProfile reads and converts the node's profile file p.
func localhostProfile(in Input, p string, caps []string) (*specs.LinuxSeccomp, error) {
	if !path.IsAbs(p) {
		return nil, invalidf("seccomp localhost profile %q: not an absolute path", p)
	}
	if in.ReadFile == nil {
		return nil, invalidf("seccomp localhost profile %q: no way to read node files here", p)
	}
	b, err := in.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, invalidf("seccomp localhost profile %q: no such file on the node", p)
	}
	if err != nil {
		return nil, invalidf("seccomp localhost profile %q: %v", p, err)
	}
	prof, err := parseProfile(b, caps)
	if err != nil {
		return nil, invalidf("seccomp localhost profile %q: %v", p, err)
	}
	return prof, nil
}

// dockerProfile is the JSON profile format Docker, containerd and CRI-O
// read from the node: the OCI seccomp section plus per-rule conditions
// (includes/excludes) and archMap. Unknown fields are errors: a misspelt
// field would otherwise silently loosen the filter.
type dockerProfile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures   []specs.Arch             `json:"architectures,omitempty"`
	ArchMap         []struct {
		Arch    specs.Arch   `json:"architecture"`
		SubArch []specs.Arch `json:"subArchitectures"`
	} `json:"archMap,omitempty"`
	Flags        []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath string                   `json:"listenerPath,omitempty"`
	Syscalls     []dockerSyscall          `json:"syscalls,omitempty"`
}

type dockerSyscall struct {
	Name     string                   `json:"name,omitempty"`
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
	Comment  string                   `json:"comment,omitempty"`
	Includes *dockerFilter            `json:"includes,omitempty"`
	Excludes *dockerFilter            `json:"excludes,omitempty"`
}

type dockerFilter struct {
	Caps   []string `json:"caps,omitempty"`
	Arches []string `json:"arches,omitempty"`
	// MinKernel is taken as met: crib needs a kernel (5.6, openat2) newer
	// than any minimum the published profiles name.
	MinKernel string `json:"minKernel,omitempty"`
}

// archNames are the spellings of this machine's architecture in
// includes/excludes.arches.
var archNames = []string{runtime.GOARCH, "x86_64"}

func (f *dockerFilter) matches(caps []string, all bool) bool {
	if f == nil {
		return all
	}
	capOK := func(c string) bool { return slices.Contains(caps, c) }
	archOK := func(a string) bool { return slices.Contains(archNames, a) }
	if all { // includes: every listed capability held, this arch listed
		return (len(f.Caps) == 0 || !slices.ContainsFunc(f.Caps, func(c string) bool { return !capOK(c) })) &&
			(len(f.Arches) == 0 || slices.ContainsFunc(f.Arches, archOK))
	}
	// excludes: any listed capability held, or this arch listed
	return slices.ContainsFunc(f.Caps, capOK) || slices.ContainsFunc(f.Arches, archOK)
}

// parseProfile converts a profile file to the spec's section, keeping the
// rules whose conditions hold for this container on this machine.
func parseProfile(b []byte, caps []string) (*specs.LinuxSeccomp, error) {
	var d dockerProfile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	if d.DefaultAction == "" {
		return nil, errors.New("no defaultAction")
	}
	out := &specs.LinuxSeccomp{
		DefaultAction: d.DefaultAction, DefaultErrnoRet: d.DefaultErrnoRet,
		Architectures: d.Architectures, Flags: d.Flags, ListenerPath: d.ListenerPath,
	}
	for _, m := range d.ArchMap {
		out.Architectures = append(out.Architectures, m.Arch)
		out.Architectures = append(out.Architectures, m.SubArch...)
	}
	for i, s := range d.Syscalls {
		names := s.Names
		if s.Name != "" {
			names = append([]string{s.Name}, names...)
		}
		if len(names) == 0 {
			return nil, invalidf("syscalls[%d]: no name", i)
		}
		if !s.Includes.matches(caps, true) || s.Excludes != nil && s.Excludes.matches(caps, false) {
			continue
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: names, Action: s.Action, ErrnoRet: s.ErrnoRet, Args: s.Args})
	}
	return out, nil
}
