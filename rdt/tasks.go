package rdt

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
)

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// Monitoring reports whether the host has L3 monitoring (CMT/MBM), so
// Place makes per-container monitoring groups.
func (c *Controller) Monitoring() bool { return c.info.Mon != nil && c.info.Mon.NumRMIDs > 0 }

// classDirRLocked checks that class can take tasks and returns its group
// directory.
//
// Preconditions: c.mu held for reading.
func (c *Controller) classDirRLocked(class string) (string, error) {
	if !c.info.Available {
		return "", preconditionf("rdt class %s: RDT is not available on this node: %s", class, c.info.Reason)
	}
	if c.classes[class] == nil {
		return "", invalidf("rdt class %s: no such class", class)
	}
	return groupDir(class), nil
}

// monDir is a container's monitoring group inside a class's group.
func monDir(classDir, containerID string) string {
	return groupFile(classDir, "mon_groups/"+containerID)
}

// Place moves pid into class (an empty class does nothing) and, where the
// host monitors and containerID is not empty, into the container's
// monitoring group, made on first use. resctrl takes one pid per write and
// moves only that thread; the caller places a process before it starts
// threads, and its children inherit the group.
//
// Monitoring is best effort: when it fails (no RMID left) the pid stays in
// its class and the failure comes back as warning.
func (c *Controller) Place(class, containerID string, pid int) (warning, err error) {
	if class == "" {
		return nil, nil
	}
	if pid <= 0 {
		return nil, invalidf("place pid %d in rdt class %s: not a pid", pid, class)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	dir, err := c.classDirRLocked(class)
	if err != nil {
		return nil, err
	}
	pidText := []byte(strconv.Itoa(pid))
	if err := c.fs.WriteFile(groupFile(dir, "tasks"), pidText); err != nil {
		return nil, fmt.Errorf("place pid %d in rdt class %s: %w", pid, class, c.kernelErr(err))
	}
	if containerID == "" || !c.Monitoring() {
		return nil, nil
	}
	if err := c.createMonGroupRLocked(class, dir, containerID); err != nil {
		return err, nil
	}
	// The kernel takes a task into a monitoring group only from the group's
	// own control group, which is why the class comes first.
	if err := c.fs.WriteFile(groupFile(monDir(dir, containerID), "tasks"), pidText); err != nil {
		return fmt.Errorf("place pid %d in monitoring group of container %s: %w", pid, containerID, c.kernelErr(err)), nil
	}
	return nil, nil
}

// CreateMonGroup makes the monitoring group of a container in class ahead
// of Place; it does nothing on a host without monitoring, and succeeds when
// the group exists.
func (c *Controller) CreateMonGroup(class, containerID string) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	dir, err := c.classDirRLocked(class)
	if err != nil || !c.Monitoring() {
		return err
	}
	return c.createMonGroupRLocked(class, dir, containerID)
}

// Preconditions: c.mu held for reading.
func (c *Controller) createMonGroupRLocked(class, dir, containerID string) error {
	if err := validateGroupName(containerID); err != nil {
		return err
	}
	if err := c.fs.Mkdir(monDir(dir, containerID)); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create monitoring group of container %s in rdt class %s: %w", containerID, class, c.kernelErr(err))
	}
	return nil
}

// validateGroupName checks a container id used as a directory name.
func validateGroupName(id string) error {
	if id == "" || id == "." || strings.ContainsAny(id, "/\x00") || strings.Contains(id, "..") || len(id) > 255 {
		return invalidf("container id %q: not usable as a monitoring group name", id)
	}
	return nil
}

// RemoveMonGroup removes a container's monitoring group. It succeeds when
// there is none (removed already, no monitoring, class gone), so a retried
// container removal does not fail.
func (c *Controller) RemoveMonGroup(class, containerID string) error {
	if class == "" || !c.Monitoring() {
		return nil
	}
	if err := validateGroupName(containerID); err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.classes[class] == nil {
		// Reload removed the class's group, and the kernel its monitoring
		// groups with it.
		return nil
	}
	err := c.fs.Remove(monDir(groupDir(class), containerID))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove monitoring group of container %s in rdt class %s: %w", containerID, class, c.kernelErr(err))
	}
	return nil
}

// MonStats is what a monitoring group counted, per L3 domain.
type MonStats struct {
	Domains []MonDomain `json:"domains"`
}

// MonDomain holds one L3 domain's counters. A counter is nil when the host
// lacks it or the kernel answers "Unavailable" (an RMID not yet counting).
type MonDomain struct {
	ID int `json:"id"`
	// LLCOccupancy is bytes of L3 held now.
	LLCOccupancy *uint64 `json:"llcOccupancy,omitempty"`
	// MBMTotalBytes and MBMLocalBytes are cumulative memory traffic.
	MBMTotalBytes *uint64 `json:"mbmTotalBytes,omitempty"`
	MBMLocalBytes *uint64 `json:"mbmLocalBytes,omitempty"`
}

// MonStats reads a container's counters from
// <group>/mon_groups/<id>/mon_data/mon_L3_XX/. Errors wrap ErrNotFound when
// the container has no monitoring group.
func (c *Controller) MonStats(class, containerID string) (*MonStats, error) {
	if err := validateGroupName(containerID); err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	dir, err := c.classDirRLocked(class)
	if err != nil {
		return nil, err
	}
	if !c.Monitoring() {
		return nil, preconditionf("monitoring stats of container %s: the host has no RDT monitoring", containerID)
	}
	data := monDir(dir, containerID) + "/mon_data"
	ents, err := c.fs.ReadDir(data)
	if err != nil {
		return nil, fmt.Errorf("monitoring stats of container %s: %w", containerID, c.kernelErr(err))
	}
	st := &MonStats{}
	for _, e := range ents {
		num, ok := strings.CutPrefix(e.Name(), "mon_L3_")
		id, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue
		}
		d := MonDomain{ID: id}
		for _, f := range []struct {
			name string
			dst  **uint64
		}{{"llc_occupancy", &d.LLCOccupancy}, {"mbm_total_bytes", &d.MBMTotalBytes}, {"mbm_local_bytes", &d.MBMLocalBytes}} {
			if !slices.Contains(c.info.Mon.Features, f.name) {
				continue
			}
			b, err := c.fs.ReadFile(data + "/" + e.Name() + "/" + f.name)
			if err != nil {
				return nil, fmt.Errorf("monitoring stats of container %s: read %s: %w", containerID, f.name, err)
			}
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				*f.dst = &v
			}
		}
		st.Domains = append(st.Domains, d)
	}
	slices.SortFunc(st.Domains, func(a, b MonDomain) int { return a.ID - b.ID })
	return st, nil
}
