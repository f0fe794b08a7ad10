package layer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/resolve"
)

// applier holds the state of one Apply: the root fd everything is resolved
// against, a cached parent fd, and what Usage needs.
type applier struct {
	ctx  context.Context
	root int // the layer dir, O_RDONLY so it also serves fsetxattr and fchown
	buf  []byte

	// parent caches the fd of the last parent directory: entries of a
	// layer come grouped by directory, so most need no path walk at all.
	parent struct {
		name string
		fd   int // -1 when empty
	}
	// stale is set when an entry removed something, which may change what
	// the cached parent's name resolves to; the fd is dropped at the next
	// lookup, not at once, because the entry in progress may still use it.
	stale bool

	// files maps every non-directory inode created to its allocated bytes,
	// so hard links count once and replaced files drop out.
	files map[uint64]int64
	// dirs maps every directory inode to how to find it again at the end,
	// when its size is final and its times can be set for good.
	dirs map[uint64]*dirInfo

	bytes, inodes int64 // directories, summed by finishDirs
}

// dirInfo is what finishDirs needs of a directory.
type dirInfo struct {
	name     string // clean name, resolved again in the root at the end
	times    []unix.Timespec
	hasTimes bool // false for parents the layer did not list
}

func newApplier(ctx context.Context, dir string) (*applier, error) {
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open layer dir %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		unix.Close(root)
		return nil, fmt.Errorf("stat layer dir %s: %w", dir, err)
	}
	a := &applier{
		ctx:   ctx,
		root:  root,
		buf:   make([]byte, copyBufferSize),
		files: make(map[uint64]int64),
		dirs:  map[uint64]*dirInfo{st.Ino: {name: "."}},
	}
	a.parent.fd = -1
	return a, nil
}

func (a *applier) close() {
	a.dropParent()
	unix.Close(a.root)
}

func (a *applier) dropParent() {
	if a.parent.fd >= 0 {
		unix.Close(a.parent.fd)
	}
	a.parent.name, a.parent.fd = "", -1
	a.stale = false
}

// resolveDir opens the directory name inside the root.
//
// RESOLVE_IN_ROOT rather than RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS: a layer
// may legitimately list "lib -> usr/lib" and then "lib/x.so", which
// containerd and docker (chrooted) unpack to usr/lib/x.so, and rejecting it
// would fail pulls that work elsewhere. The kernel treats the root fd as "/"
// for every absolute symlink and ".." on the way, atomically, so however the
// layer's symlinks are arranged the result is inside the root; a userspace
// check would race with nothing here but is still the kind of code that
// grows holes. RESOLVE_NO_MAGICLINKS keeps /proc-style links out, should the
// root ever contain a mount.
func (a *applier) resolveDir(name string, flags uint64) (int, error) {
	return resolve.InRoot(a.root, name, int(flags)|unix.O_DIRECTORY, 0)
}

// openParent returns an fd for the directory name, creating missing
// directories (0755, root-owned, as docker does). The fd belongs to the
// cache: the caller must not close it.
func (a *applier) openParent(name string) (int, error) {
	if name == "." {
		return a.root, nil
	}
	if a.stale {
		a.dropParent()
	}
	if a.parent.fd >= 0 && a.parent.name == name {
		return a.parent.fd, nil
	}
	fd, err := a.resolveDir(name, unix.O_PATH)
	if err == unix.ENOENT {
		fd, err = a.mkdirAll(name)
	}
	if err != nil {
		return -1, fmt.Errorf("open parent directory %q: %w", name, err)
	}
	a.dropParent()
	a.parent.name, a.parent.fd = name, fd
	return fd, nil
}

// lookupDir returns an fd for the existing directory name, and whether the
// caller owns it (and must close it).
func (a *applier) lookupDir(name string) (fd int, owned bool, err error) {
	if name == "." {
		return a.root, false, nil
	}
	if !a.stale && a.parent.fd >= 0 && a.parent.name == name {
		return a.parent.fd, false, nil
	}
	fd, err = a.resolveDir(name, unix.O_PATH)
	if err != nil {
		return -1, false, err
	}
	return fd, true, nil
}

// mkdirAll creates the missing directories of name one component at a time,
// each prefix resolved in the root like any other path, so the directories
// land where a later lookup of name will find them.
func (a *applier) mkdirAll(name string) (int, error) {
	prev := a.root
	for i := 0; ; {
		end := len(name)
		if j := strings.IndexByte(name[i:], '/'); j >= 0 {
			end = i + j
		}
		fd, err := a.resolveDir(name[:end], unix.O_PATH)
		if err == unix.ENOENT {
			fd, err = a.mkdirImplicit(prev, name[i:end], name[:end])
		}
		if prev != a.root {
			unix.Close(prev)
		}
		if err != nil || end == len(name) {
			return fd, err
		}
		prev, i = fd, end+1
	}
}

// mkdirImplicit creates a directory the layer needs but did not list.
func (a *applier) mkdirImplicit(pfd int, base, name string) (int, error) {
	if err := unix.Mkdirat(pfd, base, 0o755); err != nil {
		if err == unix.EEXIST {
			// Something that does not resolve to a directory: a dangling
			// symlink. Creating its target is more than docker does.
			err = unix.ENOTDIR
		}
		return -1, fmt.Errorf("create %q: %w", name, err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %q: %w", name, err)
	}
	// Explicit owner and mode: a setgid parent would pass on its group and
	// bit, and the process umask would narrow 0755.
	var st unix.Stat_t
	err = unix.Fchown(fd, 0, 0)
	if err == nil {
		err = unix.Fchmod(fd, 0o755)
	}
	if err == nil {
		err = unix.Fstat(fd, &st)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set up %q: %w", name, err)
	}
	a.dirs[st.Ino] = &dirInfo{name: name}
	return fd, nil
}

// create runs mk, and if an earlier entry holds the name removes it and runs
// mk again: later entries win, and trying first saves a stat per entry on the
// usual path, where the name is free.
func (a *applier) create(op string, pfd int, base string, mk func() error) error {
	err := mk()
	if err == unix.EEXIST {
		if err := a.remove(pfd, base); err != nil {
			return err
		}
		err = mk()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// remove deletes base under pfd, recursively for a directory, keeping the
// Usage maps in step.
func (a *applier) remove(pfd int, base string) error {
	a.stale = true
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat existing %q: %w", base, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return a.removeDir(pfd, base, st.Ino)
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return fmt.Errorf("remove existing %q: %w", base, err)
	}
	if st.Nlink == 1 {
		delete(a.files, st.Ino)
	}
	return nil
}

func (a *applier) removeDir(pfd int, base string, ino uint64) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open existing %q: %w", base, err)
	}
	f := os.NewFile(uintptr(fd), base)
	names, err := f.Readdirnames(-1)
	if err != nil {
		err = fmt.Errorf("read existing %q: %w", base, err)
	}
	for _, n := range names {
		if err = a.remove(int(f.Fd()), n); err != nil {
			break
		}
	}
	f.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("remove existing %q: %w", base, err)
	}
	delete(a.dirs, ino)
	return nil
}

// record counts a non-directory inode after its last change.
func (a *applier) record(st *unix.Stat_t) {
	a.files[st.Ino] = st.Blocks * 512
}

// finishDirs sets directory times now that no child will touch them again,
// and counts the directories at their final size.
func (a *applier) finishDirs() error {
	for ino, d := range a.dirs {
		var fd int
		var err error
		if d.name == "." {
			fd, err = unix.Openat(a.root, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		} else {
			fd, err = a.resolveDir(d.name, unix.O_PATH|unix.O_NOFOLLOW)
		}
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			// A later entry replaced a symlink on the way, so the name
			// leads elsewhere. Only a crafted layer does that; its
			// directory keeps the time of its last change.
			continue
		}
		if err != nil {
			return fmt.Errorf("open directory %q: %w", d.name, err)
		}
		err = a.finishDir(fd, ino, d)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("finish directory %q: %w", d.name, err)
		}
	}
	return nil
}

func (a *applier) finishDir(fd int, ino uint64, d *dirInfo) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if st.Ino != ino {
		return nil // the name leads to another directory now; see finishDirs
	}
	if d.hasTimes {
		if err := unix.UtimesNanoAt(fd, "", d.times, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("set times: %w", err)
		}
	}
	a.bytes += st.Blocks * 512
	a.inodes++
	return nil
}

func (a *applier) usage() Usage {
	u := Usage{Bytes: a.bytes, Inodes: a.inodes}
	for _, b := range a.files {
		u.Bytes += b
		u.Inodes++
	}
	return u
}
