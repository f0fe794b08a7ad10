package runtime

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// usageTTL is how long a writable layer's measured size is reused: the
// kubelet asks every 10 s or so, and a walk of a big upper dir is not free.
const usageTTL = 10 * time.Second

type layerUsage struct {
	at            time.Time
	bytes, inodes uint64
}

// WritableUsage is the space a container's writable layer takes: allocated
// bytes and inodes under its upper dir (hard links counted once), measured
// at most once per usageTTL.
func (m *Manager) WritableUsage(id string) (uint64, uint64, error) {
	if _, err := m.get(id); err != nil {
		return 0, 0, err
	}
	m.mu.Lock()
	u, ok := m.usage[id]
	m.mu.Unlock()
	if ok && time.Since(u.at) < usageTTL {
		return u.bytes, u.inodes, nil
	}
	bytes, inodes, err := m.walkUsage(id)
	if err != nil {
		return 0, 0, err
	}
	m.mu.Lock()
	if _, ok := m.records[id]; ok {
		m.usage[id] = layerUsage{at: time.Now(), bytes: bytes, inodes: inodes}
	}
	m.mu.Unlock()
	return bytes, inodes, nil
}

func (m *Manager) walkUsage(id string) (bytes, inodes uint64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(filepath.Join(m.containerDir(id), "upper"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		bytes += uint64(st.Blocks) * 512
		inodes++
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("writable layer usage of container %s: %w", id, err)
	}
	return bytes, inodes, nil
}
