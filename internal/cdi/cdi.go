// Package cdi resolves Container Device Interface (CDI) device requests
// against the vendor spec files of the node and applies their edits to a
// container's OCI spec.
//
// It is the only importer of tags.cncf.io/container-device-interface
// (internal/layers checks it). It imports no crib package; the caller (cri)
// logs what it reports. Internal to crib; no API compatibility promised.
package cdi

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/crib-runtime/crib/internal/hostfs"
)

// AnnotationPrefix starts the keys of the container annotations that
// request CDI devices (the kubelet's device plugins write them); each value
// is a comma-separated list of fully qualified names, vendor.com/class=name.
const AnnotationPrefix = cdilib.AnnotationPrefix

// Injector applies CDI devices to OCI specs. Its zero value and one made
// from no directories refuse every request.
type Injector struct {
	dirs []string
	// mu makes rescan, checks and injection one step: the devices checked
	// are the ones applied, whatever another create rescans meanwhile.
	mu    sync.Mutex
	cache *cdilib.Cache
}

// New returns an Injector over the spec directories dirs, later ones
// winning on a device named in several. The cache never watches them
// (no fsnotify goroutines in the daemon): Inject rescans them instead.
func New(dirs []string) *Injector {
	if len(dirs) == 0 {
		return &Injector{}
	}
	// NewCache's error is always nil (documented), kept for its API.
	c, _ := cdilib.NewCache(cdilib.WithSpecDirs(dirs...), cdilib.WithAutoRefresh(false))
	return &Injector{dirs: slices.Clone(dirs), cache: c}
}

// Requested returns the devices a container asks for: the CRI list first,
// then the annotations' in key order, each name once. A name that is not
// fully qualified is InvalidArgument naming the CRI entry or annotation key
// it came from.
func Requested(annotations map[string]string, cri []string) ([]string, error) {
	var out []string
	add := func(name string) {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for i, name := range cri {
		if _, _, _, err := parser.ParseQualifiedName(name); err != nil {
			return nil, fmt.Errorf("cdi_devices[%d] %q: %v: %w", i, name, err, errdefs.ErrInvalidArgument)
		}
		add(name)
	}
	for _, key := range slices.Sorted(maps.Keys(annotations)) {
		if !strings.HasPrefix(key, AnnotationPrefix) {
			continue
		}
		for name := range strings.SplitSeq(annotations[key], ",") {
			if _, _, _, err := parser.ParseQualifiedName(name); err != nil {
				return nil, fmt.Errorf("annotation %q: %v: %w", key, err, errdefs.ErrInvalidArgument)
			}
			add(name)
		}
	}
	return out, nil
}

// Node is a device node an injection added: where it appears in the
// container and the host node it was made from.
type Node struct {
	Path, HostPath string
}

// Injection is what Inject did, for the caller's checks and records.
type Injection struct {
	// Devices are the names applied, in request order.
	Devices []string
	// Mounts are the spec's mounts that the edits put there.
	Mounts []specs.Mount
	// Nodes are the device nodes the edits added.
	Nodes []Node
	// Broken names the spec files that failed to load at the rescan, each
	// with its error; nil when all loaded. Not an error of this injection
	// unless a device it asked for is missing (then the error says so too):
	// one vendor's broken file must not stop another's devices.
	Broken error
}

// Inject rescans the spec directories and applies the devices names (as
// Requested returned them) to s. Errors: a name no spec defines is
// InvalidArgument naming every such name; CDI requests on a node without
// spec directories, and edits crib cannot apply (Intel RDT,
// network devices), are FailedPrecondition naming the device and the edit;
// a spec whose edits fail (a missing host device) is FailedPrecondition.
// On error s may be partly edited: the caller drops it.
func (i *Injector) Inject(s *specs.Spec, names []string) (Injection, error) {
	if len(names) == 0 {
		return Injection{}, nil
	}
	if i == nil || i.cache == nil {
		return Injection{}, fmt.Errorf("CDI devices %s requested, but cdi.spec_dirs is empty: %w",
			strings.Join(names, ", "), errdefs.ErrFailedPrecondition)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	var inj Injection
	_ = i.cache.Refresh() // the same errors, by file, from GetErrors
	inj.Broken = i.broken()
	devs := make([]*cdilib.Device, 0, len(names))
	var unknown []string
	for _, name := range names {
		d := i.cache.GetDevice(name)
		if d == nil {
			unknown = append(unknown, name)
			continue
		}
		devs = append(devs, d)
	}
	if len(unknown) > 0 {
		err := fmt.Errorf("unknown CDI device %s (spec dirs %s)", strings.Join(unknown, ", "), strings.Join(i.dirs, ", "))
		if inj.Broken != nil {
			err = fmt.Errorf("%w; spec files that failed to load: %w", err, inj.Broken)
		}
		return inj, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	for _, d := range devs {
		if err := trusted(d.GetSpec().GetPath()); err != nil {
			return inj, fmt.Errorf("CDI device %s: %w", d.GetQualifiedName(), err)
		}
	}
	edits, err := collect(devs)
	if err != nil {
		return inj, err
	}
	rules := 0
	if s.Linux != nil && s.Linux.Resources != nil {
		rules = len(s.Linux.Resources.Devices)
	}
	if unresolved, err := i.cache.InjectDevices(s, names...); err != nil {
		if len(unresolved) > 0 { // not after the lookups above, under mu
			return inj, fmt.Errorf("unknown CDI device %s: %w", strings.Join(unresolved, ", "), errdefs.ErrInvalidArgument)
		}
		return inj, fmt.Errorf("inject CDI devices %s: %v: %w", strings.Join(names, ", "), err, errdefs.ErrFailedPrecondition)
	}
	dropNoAccess(s, rules)
	inj.Devices = slices.Clone(names)
	inj.Nodes, inj.Mounts = edits.nodes, injectedMounts(s, edits.mounts)
	return inj, nil
}

// broken lists the spec files the last rescan could not load.
func (i *Injector) broken() error {
	byPath := i.cache.GetErrors()
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(byPath)) {
		errs = append(errs, fmt.Errorf("%s: %w", p, errors.Join(byPath[p]...)))
	}
	return errors.Join(errs...)
}

// edits is what the requested devices' specs will add, read before they
// are applied.
type edits struct {
	nodes  []Node
	mounts []string // container paths
}

// collect checks the edits of devs (each device's and, once per spec file,
// the file's own) for what crib cannot apply, naming the device.
func collect(devs []*cdilib.Device) (edits, error) {
	var out edits
	seen := map[*cdilib.Spec]bool{}
	for _, d := range devs {
		name := d.GetQualifiedName()
		// In the library's order (Cache.InjectDevices): a spec file's own
		// edits before its first device's, so a later node at the same
		// path is the one applied.
		var sets []*cdispec.ContainerEdits
		if sp := d.GetSpec(); !seen[sp] {
			seen[sp] = true
			sets = append(sets, &sp.ContainerEdits)
		}
		sets = append(sets, &d.ContainerEdits)
		for _, e := range sets {
			if err := refuse(name, d.GetSpec().GetPath(), e); err != nil {
				return edits{}, err
			}
			for _, n := range e.DeviceNodes {
				if n == nil {
					continue
				}
				host := n.HostPath
				if host == "" {
					host = n.Path
				}
				out.nodes = append(out.nodes, Node{Path: n.Path, HostPath: host})
			}
			for _, m := range e.Mounts {
				if m != nil {
					out.mounts = append(out.mounts, m.ContainerPath)
				}
			}
		}
	}
	return out, nil
}

// refuse fails on edits crib cannot apply, rather than dropping them.
func refuse(device, file string, e *cdispec.ContainerEdits) error {
	fail := func(what string) error {
		return fmt.Errorf("CDI device %s (spec %s): %s: %w", device, file, what, errdefs.ErrFailedPrecondition)
	}
	if r := e.IntelRdt; r != nil {
		// crib places containers in its own RDT classes (rdt); a vendor's
		// CLOS or schemata would bypass the class configuration.
		return fail(fmt.Sprintf("sets Intel RDT (closID %q), which crib does not take from CDI", r.ClosID))
	}
	for _, n := range e.NetDevices {
		if n != nil {
			return fail(fmt.Sprintf("moves network device %s into the container as %s, which crib does not do", n.HostInterfaceName, n.Name))
		}
	}
	return nil
}

// dropNoAccess removes the device cgroup rules, from index from on, that
// the edits added with no access (CDI permissions "none"). An OCI rule
// without access means all of it (rwm), the opposite of what was asked.
func dropNoAccess(s *specs.Spec, from int) {
	if s.Linux == nil || s.Linux.Resources == nil || len(s.Linux.Resources.Devices) <= from {
		return
	}
	r := s.Linux.Resources
	added := slices.DeleteFunc(slices.Clone(r.Devices[from:]), func(d specs.LinuxDeviceCgroup) bool {
		return d.Allow && d.Access == ""
	})
	r.Devices = append(r.Devices[:from:from], added...)
}

// injectedMounts returns the mounts of s at the container paths the edits
// named (the library replaces a mount at the same path).
func injectedMounts(s *specs.Spec, paths []string) []specs.Mount {
	var out []specs.Mount
	for _, m := range s.Mounts {
		if slices.Contains(paths, m.Destination) {
			out = append(out, m)
		}
	}
	return out
}

// trusted refuses a spec file that someone other than root could have
// written, or replaced in its directory: its edits bind any host path
// into a container and allow any device, as much power as crib's own
// config.
func trusted(file string) error {
	if err := hostfs.RootOnly(file); err != nil {
		return fmt.Errorf("CDI spec %w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return nil
}
