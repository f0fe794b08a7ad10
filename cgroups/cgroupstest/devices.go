package cgroupstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// devState is a fake v1 devices cgroup: a default and exceptions
// ("c 1:3" → "rwm"), kept in the order they were added, as the kernel
// lists them.
type devState struct {
	allow bool
	keys  []string
	acc   map[string]string
}

func (d *devState) clone() *devState {
	c := &devState{allow: d.allow, keys: append([]string(nil), d.keys...), acc: map[string]string{}}
	for k, v := range d.acc {
		c.acc[k] = v
	}
	return c
}

func (d *devState) list() string {
	if d.allow {
		return "a *:* rwm\n"
	}
	var b strings.Builder
	for _, k := range d.keys {
		fmt.Fprintf(&b, "%s %s\n", k, d.acc[k])
	}
	return b.String()
}

// add merges access into the exception key; sub takes it away and drops
// an exception left with none (the kernel's dev_exception_add and _rm,
// which match the type and numbers exactly).
func (d *devState) add(key, access string) {
	if _, ok := d.acc[key]; !ok {
		d.keys = append(d.keys, key)
	}
	d.acc[key] = rwm(d.acc[key] + access)
}

func (d *devState) sub(key, access string) {
	cur, ok := d.acc[key]
	if !ok {
		return
	}
	left := rwm(strings.Map(func(c rune) rune {
		if strings.ContainsRune(access, c) {
			return -1
		}
		return c
	}, cur))
	if left != "" {
		d.acc[key] = left
		return
	}
	delete(d.acc, key)
	for i, k := range d.keys {
		if k == key {
			d.keys = append(d.keys[:i], d.keys[i+1:]...)
			break
		}
	}
}

func rwm(s string) string {
	var b strings.Builder
	for _, c := range "rwm" {
		if strings.ContainsRune(s, c) {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// devicesOf returns the fake state of cgroup dir, made from its parent's
// on first use (a new v1 cgroup starts as a copy of its parent).
func (tr *Tree) devicesOf(dir string) *devState {
	if d, ok := tr.devices[dir]; ok {
		return d
	}
	var d *devState
	if parent := filepath.Dir(dir); parent != dir && tr.isDevicesCgroup(parent) {
		d = tr.devicesOf(parent).clone()
	} else {
		d = &devState{allow: true, acc: map[string]string{}}
	}
	tr.devices[dir] = d
	return d
}

func (tr *Tree) isDevicesCgroup(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "devices.list"))
	return err == nil
}

// write plays the kernel's part in writes to devices.allow and
// devices.deny, logging each as "allow c 1:3 rwm" in DeviceWrites.
func (tr *Tree) write(path, value string) (bool, error) {
	file := filepath.Base(path)
	if file != "devices.allow" && file != "devices.deny" {
		return false, nil
	}
	dir := filepath.Dir(path)
	if tr.FailDeviceWrite != nil {
		if err := tr.FailDeviceWrite(dir, file, value); err != nil {
			return true, err
		}
	}
	d := tr.devicesOf(dir)
	allow := file == "devices.allow"
	tr.DeviceWrites[dir] = append(tr.DeviceWrites[dir], strings.TrimPrefix(file, "devices.")+" "+value)
	if value == "a" {
		*d = devState{allow: allow, acc: map[string]string{}}
	} else {
		f := strings.Fields(value)
		if len(f) != 3 {
			return true, fmt.Errorf("fake devices: bad rule %q", value)
		}
		if allow != d.allow {
			d.add(f[0]+" "+f[1], f[2])
		} else {
			d.sub(f[0]+" "+f[1], f[2])
		}
	}
	return true, os.WriteFile(filepath.Join(dir, "devices.list"), []byte(d.list()), 0o644)
}

// attachDevices records the v2 device program of dir, replacing the one
// there.
func (tr *Tree) attachDevices(dir string, prog []byte) error {
	if tr.FailAttachDevices != nil {
		return tr.FailAttachDevices
	}
	tr.DevicePrograms[dir] = append(tr.DevicePrograms[dir][:0:0], prog...)
	tr.DeviceAttaches[dir]++
	return nil
}

// DeviceProgram returns the device program attached to cgroup cg of the
// fake cgroup2 mount, nil if none.
func (tr *Tree) DeviceProgram(cg string) []byte {
	return tr.DevicePrograms[Path(tr.Unified, cg)]
}
