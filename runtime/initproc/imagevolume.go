package initproc

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/resolve"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// overlay mounts a read-only view of image layers on dest (an image volume,
// KEP-4639): the spec's "overlay" mount with only lowerdir, which overlayfs
// makes read-only by nature, since it has no upper layer to write to. An
// optional sub path is resolved inside that view (RESOLVE_IN_ROOT, no
// crossing into another mount), so neither a symlink in the image nor ".."
// can lead to the host, and only that directory ends up on dest.
func (mt *mounter) overlay(dest string, o mountOptions) error {
	var lower []string
	var sub string
	for _, d := range o.data {
		switch {
		case strings.HasPrefix(d, "lowerdir="):
			lower = strings.Split(strings.TrimPrefix(d, "lowerdir="), ":")
		case strings.HasPrefix(d, initmsg.ImageSubPathOption):
			sub = strings.TrimPrefix(d, initmsg.ImageSubPathOption)
		default:
			// upperdir and workdir would make it writable; crib's specs
			// never ask for that, and other options were not reviewed.
			return fmt.Errorf("overlay on %s: option %q: only lowerdir (a read-only view of image layers) is supported", dest, d)
		}
	}
	if len(lower) == 0 || slices.Contains(lower, "") {
		return fmt.Errorf("overlay on %s: lowerdir is missing or has an empty layer", dest)
	}
	if o.flags&unix.MS_RDONLY == 0 {
		return fmt.Errorf("overlay on %s: an image volume must be mounted read-only (\"ro\")", dest)
	}
	dfd, err := mt.target(dest, true, 0)
	if err != nil {
		return fmt.Errorf("overlay on %s: %w", dest, err)
	}
	defer unix.Close(dfd)
	if err := mt.mountLayers(lower, dfd, dest, o.flags&^(unix.MS_BIND|unix.MS_REC)); err != nil {
		return fmt.Errorf("overlay on %s: %w", dest, err)
	}
	if sub != "" {
		if err := mt.narrow(dfd, dest, sub); err != nil {
			return err
		}
	}
	return mt.finish(dest, "overlay", o)
}

// mountLayers mounts the layers (top first) read-only on the mount point
// dfd (dest in the rootfs). overlayfs needs two lower dirs when it has no
// upper one ("at least 2 lowerdir are needed while upperdir nonexistent"),
// so a one-layer image is a read-only bind of its layer instead: the same
// view, since one layer has nothing below it to hide.
func (mt *mounter) mountLayers(lower []string, dfd int, dest string, flags uintptr) error {
	if len(lower) > 1 {
		return mountOverlayFlags(procPath(dfd), initmsg.Rootfs{Lower: lower}, flags)
	}
	if err := unix.Mount(lower[0], procPath(dfd), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount layer %s: %w", lower[0], err)
	}
	// A bind takes its flags only on a remount.
	if err := mt.remountBind(dest, flags); err != nil {
		return fmt.Errorf("remount layer %s read-only: %w", lower[0], err)
	}
	return nil
}

// narrow replaces the image view mounted on the mount point dfd (dest in
// the rootfs) by a bind of its sub directory sub. The directory is opened
// from the view's root with RESOLVE_IN_ROOT and RESOLVE_NO_XDEV, cloned
// with open_tree(2) while the view is still attached (only a mount in our
// namespace can be cloned), then the view is detached and the clone moved
// onto the mount point: the container never sees the rest of the image.
func (mt *mounter) narrow(dfd int, dest, sub string) error {
	view, err := mt.root.open(dest, unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("image sub path %q on %s: reopen the image's view: %w", sub, dest, err)
	}
	defer unix.Close(view)
	sfd, err := resolve.InRoot(view, sub, unix.O_PATH|unix.O_DIRECTORY, unix.RESOLVE_NO_XDEV)
	switch {
	case errors.Is(err, unix.ENOENT):
		err = fmt.Errorf("image sub path %q does not exist in the image: %w", sub, err)
	case errors.Is(err, unix.ENOTDIR):
		err = fmt.Errorf("image sub path %q is not a directory in the image: %w", sub, err)
	case err != nil:
		err = fmt.Errorf("image sub path %q: %w", sub, err)
	}
	if err != nil {
		unix.Unmount(procPath(view), unix.MNT_DETACH)
		return fail(stepMount, dest, err)
	}
	tree, err := unix.OpenTree(sfd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	unix.Close(sfd)
	if err == nil {
		err = unix.Unmount(procPath(view), unix.MNT_DETACH)
		if err == nil {
			err = unix.MoveMount(tree, "", dfd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
		}
		unix.Close(tree)
	}
	if err != nil {
		return fail(stepMount, dest, fmt.Errorf("image sub path %q on %s: %w", sub, dest, err))
	}
	return nil
}
