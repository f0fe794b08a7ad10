package rdt

import (
	"io/fs"
	"os"
	"path/filepath"
)

// fsys is the package's only access to resctrl. Names are relative to the
// resctrl mount point. It exists so tests can put a fake in front of a plain
// directory that rejects what the kernel rejects (bad schemata, CLOSID
// exhaustion) and fills in info/last_cmd_status the way the kernel does.
type fsys interface {
	ReadFile(name string) ([]byte, error)
	// WriteFile writes data to an existing file in one write(2): resctrl
	// parses each write on its own, so a pid split over two writes is two
	// bad pids.
	WriteFile(name string, data []byte) error
	// Mkdir creates a control or monitoring group.
	Mkdir(name string) error
	// Remove removes a group (rmdir); its tasks go back to the parent.
	Remove(name string) error
	ReadDir(name string) ([]fs.DirEntry, error)
}

// osFS is the real resctrl mount.
type osFS struct{ root string }

func (o osFS) path(name string) string { return filepath.Join(o.root, name) }

func (o osFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(o.path(name)) }

func (o osFS) WriteFile(name string, data []byte) error {
	// No O_CREATE or O_TRUNC: resctrl files exist already and are not
	// regular files.
	f, err := os.OpenFile(o.path(name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (o osFS) Mkdir(name string) error { return os.Mkdir(o.path(name), 0o755) }

func (o osFS) Remove(name string) error { return os.Remove(o.path(name)) }

func (o osFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(o.path(name)) }
