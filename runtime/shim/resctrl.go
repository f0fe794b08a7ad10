package shim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/rdt"
)

// resctrlPlacer puts processes in the class groups the daemon's
// rdt.Controller made. The shim cannot own an rdt.Controller: opening one
// applies a class configuration, which would rewrite (or, without the
// file, remove) the daemon's groups. So it only writes tasks files, with
// the group naming of package rdt (crib-<class>; the root for
// rdt.RootClass) and monitoring groups in mon_groups/<container id>.
// TODO: move this into package rdt as a placement-only handle, so the
// naming has one home.
type resctrlPlacer struct {
	root string // the resctrl mount
}

// openResctrl returns the placer of the host's resctrl, nil when the
// mountinfo lines show no resctrl mount.
func openResctrl(mountinfo io.Reader) (*resctrlPlacer, error) {
	m, err := rdt.ParseMountinfo(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("find resctrl mount: %w", err)
	}
	if m == nil {
		return nil, nil
	}
	return &resctrlPlacer{root: m.Path}, nil
}

func (p *resctrlPlacer) groupDir(class string) (string, error) {
	if err := rdt.ValidateClassName(class); err != nil {
		return "", err
	}
	if class == rdt.RootClass {
		return p.root, nil
	}
	dir := filepath.Join(p.root, "crib-"+class)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("rdt class %s: %w: %w", class, err, errdefs.ErrInvalidArgument)
	}
	return dir, nil
}

// Place writes pid into the class's tasks, then (best effort, as a
// warning) into the container's monitoring group where the host monitors.
func (p *resctrlPlacer) Place(class, containerID string, pid int) (warning, err error) {
	dir, err := p.groupDir(class)
	if err != nil {
		return nil, err
	}
	pidText := []byte(strconv.Itoa(pid))
	if err := writeTasks(filepath.Join(dir, "tasks"), pidText); err != nil {
		return nil, fmt.Errorf("place pid %d in rdt class %s: %w", pid, class, err)
	}
	if _, err := os.Stat(filepath.Join(p.root, "info", "L3_MON")); err != nil {
		return nil, nil
	}
	mon := filepath.Join(dir, "mon_groups", containerID)
	if err := os.Mkdir(mon, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create monitoring group of container %s: %w", containerID, err), nil
	}
	if err := writeTasks(filepath.Join(mon, "tasks"), pidText); err != nil {
		return fmt.Errorf("place pid %d in monitoring group of container %s: %w", pid, containerID, err), nil
	}
	return nil, nil
}

// RemoveMonGroup removes the container's monitoring group, if any.
func (p *resctrlPlacer) RemoveMonGroup(class, containerID string) error {
	dir, err := p.groupDir(class)
	if err != nil {
		return nil // the class is gone, and its monitoring groups with it
	}
	err = os.Remove(filepath.Join(dir, "mon_groups", containerID))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove monitoring group of container %s: %w", containerID, err)
	}
	return nil
}

// writeTasks writes to an existing resctrl file (no O_CREATE: tasks files
// are the kernel's).
func writeTasks(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}
