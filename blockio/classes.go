package blockio

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// class is one class's settings: a default weight and per-device ones.
type class struct {
	weight  *uint16
	devices map[devNum]*deviceSettings
}

// deviceSettings are one device's values in a class; nil is unset.
type deviceSettings struct {
	weight                                 *uint16
	readBps, writeBps, readIOPS, writeIOPS *uint64
}

// merge sets what vals (Weight, ThrottleReadBps, ThrottleWriteBps,
// ThrottleReadIOPS, ThrottleWriteIOPS) sets, keeping the rest.
func (s *deviceSettings) merge(vals [5]*uint64) {
	if vals[0] != nil {
		w := uint16(*vals[0])
		s.weight = &w
	}
	for i, dst := range []**uint64{&s.readBps, &s.writeBps, &s.readIOPS, &s.writeIOPS} {
		if v := vals[i+1]; v != nil {
			x := *v
			*dst = &x
		}
	}
}

// oci builds a fresh LinuxBlockIO, devices in major:minor order so that
// specs compare equal.
func (c *class) oci() *specs.LinuxBlockIO {
	out := &specs.LinuxBlockIO{}
	if c.weight != nil {
		w := *c.weight
		out.Weight = &w
	}
	devs := slices.SortedFunc(maps.Keys(c.devices), func(a, b devNum) int {
		return cmp.Or(cmp.Compare(a.major, b.major), cmp.Compare(a.minor, b.minor))
	})
	throttle := func(list *[]specs.LinuxThrottleDevice, d devNum, v *uint64) {
		if v != nil {
			t := specs.LinuxThrottleDevice{Rate: *v}
			t.Major, t.Minor = d.major, d.minor
			*list = append(*list, t)
		}
	}
	for _, d := range devs {
		s := c.devices[d]
		if s.weight != nil {
			w := *s.weight
			wd := specs.LinuxWeightDevice{Weight: &w}
			wd.Major, wd.Minor = d.major, d.minor
			out.WeightDevice = append(out.WeightDevice, wd)
		}
		throttle(&out.ThrottleReadBpsDevice, d, s.readBps)
		throttle(&out.ThrottleWriteBpsDevice, d, s.writeBps)
		throttle(&out.ThrottleReadIOPSDevice, d, s.readIOPS)
		throttle(&out.ThrottleWriteIOPSDevice, d, s.writeIOPS)
	}
	return out
}

// Classes holds the configured block I/O classes. It is safe for
// concurrent use; Reload swaps the whole set or nothing.
type Classes struct {
	h host
	// mu guards file and classes.
	mu      sync.RWMutex
	file    string
	classes map[string]*class
}

// Open loads the class file at path ("" for no classes) against this
// node's devices.
func Open(path string) (*Classes, error) {
	c := &Classes{h: osHost}
	if err := c.Reload(path); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads path again ("" drops every class) and, only if all of it
// is valid, replaces the classes. Containers made earlier keep the
// settings they were given.
func (c *Classes) Reload(path string) error {
	classes := map[string]*class{}
	if path != "" {
		f, err := readFile(path)
		if err != nil {
			return err
		}
		if classes, err = compile(f, c.h); err != nil {
			return fmt.Errorf("block I/O class file %s: %w", path, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file, c.classes = path, classes
	return nil
}

// Names lists the configured classes, sorted.
func (c *Classes) Names() []string {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return sortedKeys(c.classes)
}

// Resolve returns the spec settings of class name, a fresh value the
// caller may change. No class file configured is ErrFailedPrecondition,
// a class it lacks ErrInvalidArgument; both name the class. A nil Classes
// has no class file.
func (c *Classes) Resolve(name string) (*specs.LinuxBlockIO, error) {
	if c == nil {
		return nil, fmt.Errorf("block I/O class %q: no block I/O classes are configured (blockio.config_file): %w", name, errdefs.ErrFailedPrecondition)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.file == "" {
		return nil, fmt.Errorf("block I/O class %q: no block I/O classes are configured (blockio.config_file): %w", name, errdefs.ErrFailedPrecondition)
	}
	cl := c.classes[name]
	if cl == nil {
		return nil, invalidf("block I/O class %q: no such class in %s (configured: %v)", name, c.file, sortedKeys(c.classes))
	}
	return cl.oci(), nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
