package rdt

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Config is the [rdt] section of crib's daemon configuration.
type Config struct {
	// ConfigFile is the class configuration in goresctrl's YAML format.
	// Empty: no classes besides RootClass.
	ConfigFile string `toml:"config_file" json:"configFile,omitempty"`
	// DefaultClass is the class of containers that ask for none. Empty:
	// leave them where they are (the root group, normally). Ignored on a
	// node without RDT.
	DefaultClass string `toml:"default_class" json:"defaultClass,omitempty"`
	// IgnoreUnavailable turns "class requested on a node without RDT" from
	// an error into a warning (containerd's ignore_rdt_not_enabled_errors).
	IgnoreUnavailable bool `toml:"ignore_unavailable" json:"ignoreUnavailable,omitempty"`
}

// Controller owns crib's resctrl groups: one control group per configured
// class, and monitoring groups per container. It is safe for concurrent use.
type Controller struct {
	// fs and info are set by Open and never change; fs is nil when
	// resctrl is not mounted.
	fs   fsys
	info *Info

	// mu guards the fields below. Place holds it for reading while it
	// writes, so Reload cannot remove a group under it.
	mu      sync.RWMutex
	cfg     Config
	classes map[string]*classPlan
	// rootConfigured: the class file gave RootClass a schemata, which a
	// reload without it must undo.
	rootConfigured bool
}

// Open discovers resctrl through mountinfoPath (normally
// /proc/self/mountinfo) and applies cfg. A host without resctrl is not an
// error: the Controller reports Available() false and why in Info().
func Open(mountinfoPath string, cfg Config) (*Controller, error) {
	return open(mountinfoPath, cfg, func(root string) fsys { return osFS{root: root} })
}

// open is Open with the file access chosen by the caller, so tests put a
// kernel-like fake over a plain directory.
func open(mountinfoPath string, cfg Config, newFS func(root string) fsys) (*Controller, error) {
	m, err := FindMount(mountinfoPath)
	if err != nil {
		return nil, err
	}
	c := &Controller{info: &Info{Reason: "resctrl is not mounted (mount -t resctrl resctrl /sys/fs/resctrl)"}}
	if m != nil {
		c.fs = newFS(m.Path)
		if c.info, err = discover(c.fs, m); err != nil {
			return nil, fmt.Errorf("discover resctrl at %s: %w", m.Path, err)
		}
	}
	if err := c.Reload(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// Available reports whether resctrl is mounted, so classes can be used.
func (c *Controller) Available() bool { return c.info.Available }

// Classes lists the configured classes, RootClass included, sorted. It is
// empty on a node without RDT.
func (c *Controller) Classes() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Sorted(maps.Keys(c.classes))
}

// Info is what discovery found and the classes configured now.
func (c *Controller) Info() Info {
	in := *c.info
	in.Caches = slices.Clone(in.Caches)
	in.Classes = c.Classes()
	c.mu.RLock()
	in.ConfigFile, in.DefaultClass = c.cfg.ConfigFile, c.cfg.DefaultClass
	c.mu.RUnlock()
	return in
}

// Reload reads cfg's class file again and makes resctrl match it: groups of
// new classes are created, those of dropped classes removed (their tasks
// fall back to the root group, as rmdir does), and kept classes get their
// new schemata in place, so their running containers stay where they are.
// Nothing is changed when the file is invalid for this host.
func (c *Controller) Reload(cfg Config) error {
	var f *classFile
	if cfg.ConfigFile != "" {
		var err error
		if f, err = loadClassFile(cfg.ConfigFile); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.info.Available {
		// The file was checked for syntax above; without hardware there is
		// nothing to resolve it against.
		c.cfg, c.classes = cfg, nil
		return nil
	}
	plans := map[string]*classPlan{}
	if f != nil {
		var err error
		if plans, err = makePlan(c.info, f); err != nil {
			return fmt.Errorf("rdt config %s: %w", cfg.ConfigFile, err)
		}
	}
	if d := cfg.DefaultClass; d != "" && canonicalClass(d) != RootClass && plans[d] == nil {
		return invalidf("rdt default class %s: not a class of %q", d, cfg.ConfigFile)
	}
	if cfg.DefaultClass != "" {
		cfg.DefaultClass = canonicalClass(cfg.DefaultClass)
	}
	c.cfg = cfg
	return c.applyLocked(plans)
}

// groups lists the control groups under the resctrl root: crib's, by class
// name, and the others.
func (c *Controller) groups() (ours, foreign []string, err error) {
	ents, err := c.fs.ReadDir(".")
	if err != nil {
		return nil, nil, fmt.Errorf("list resctrl groups: %w", err)
	}
	for _, e := range ents {
		switch name := e.Name(); {
		case !e.IsDir() || name == "info" || name == "mon_groups" || name == "mon_data":
		case strings.HasPrefix(name, groupPrefix):
			ours = append(ours, strings.TrimPrefix(name, groupPrefix))
		default:
			foreign = append(foreign, name)
		}
	}
	return ours, foreign, nil
}

// Preconditions: c.mu held for writing.
func (c *Controller) applyLocked(plans map[string]*classPlan) error {
	ours, foreign, err := c.groups()
	if err != nil {
		return err
	}
	need := 1 + len(foreign) + len(plans)
	if plans[RootClass] != nil {
		need--
	}
	if have := c.info.numCLOSIDs(); need > 1 && need > have {
		return preconditionf("rdt config needs %d CLOSIDs (root, %d groups crib did not create %v, %d classes) but the host has %d",
			need, len(foreign), foreign, len(plans), have)
	}
	var errs []error
	// Remove first: dropped groups free the CLOSIDs new ones need.
	for _, name := range ours {
		if plans[name] == nil {
			if err := c.fs.Remove(groupDir(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove rdt class %s: %w", name, c.kernelErr(err)))
			}
		}
	}
	applied := map[string]*classPlan{RootClass: {Name: RootClass}}
	for _, name := range slices.Sorted(maps.Keys(plans)) {
		if err := c.applyClass(plans[name], slices.Contains(ours, name)); err != nil {
			errs = append(errs, err)
			continue
		}
		applied[name] = plans[name]
	}
	rootNow := plans[RootClass] != nil
	if c.rootConfigured && !rootNow {
		full := &classPlan{Name: RootClass, Schemata: fullSchemata(c.info)}
		if err := c.applyClass(full, true); err != nil {
			errs = append(errs, err)
		}
	}
	c.classes, c.rootConfigured = applied, rootNow
	return errors.Join(errs...)
}

// applyClass creates a class's group unless it exists and writes its
// schemata in one write, so the kernel applies all lines or none.
func (c *Controller) applyClass(p *classPlan, exists bool) error {
	dir := groupDir(p.Name)
	if dir != "" && !exists {
		if err := c.fs.Mkdir(dir); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create rdt class %s: %w", p.Name, c.kernelErr(err))
		}
	}
	if len(p.Schemata) == 0 {
		return nil
	}
	text := p.schemataText()
	if err := c.fs.WriteFile(groupFile(dir, "schemata"), []byte(text)); err != nil {
		return fmt.Errorf("write schemata of class %s: %q: %w", p.Name, strings.TrimSpace(text), c.kernelErr(err))
	}
	return nil
}
