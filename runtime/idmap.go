package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// idmapped is what Start prepared for a container in a user namespace of
// its pod: the spec, layers and upper and work dirs to hand to the shim,
// and the mounts to take away once the container's mounts hold their own
// references.
type idmapped struct {
	spec        json.RawMessage
	layers      []string
	upper, work string
	devShm      string
	mounts      []string
}

// userNamespaceOf returns the pinned user namespace a spec joins, "" for
// none.
func userNamespaceOf(s *specs.Spec) string {
	if s.Linux == nil {
		return ""
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.UserNamespace {
			return ns.Path
		}
	}
	return ""
}

// prepareIDMap makes a user namespace container's root filesystem and
// idmapped volumes usable from inside its pod's user namespace, where the
// host's ids of the image (root) are unmapped: each image layer gets an
// idmapped bind (on-disk 0 appears as the pod's host id of container root,
// so container root owns the image's root files), which the init uses as
// the overlay's lower dirs. overlayfs itself cannot be idmapped (EINVAL
// on 6.x), but takes idmapped layers (Linux ≥ 5.19); files the container
// writes land in the upper dir under its host ids, and the upper and work
// dirs belong to container root's host ids so it can write "/".
//
// The init runs as container root, which may not search the daemon's
// 0700 directories. So everything it reaches by path is gathered in
// base/<id> (base, the state dir's "userns", is 0711; base/<id> is 0710
// and group-owned by container root's host gid, as containerd does for
// its bundles): the idmapped layers, binds of the upper and work dirs,
// idmapped volumes and the rootfs mount point. The binds live in the
// host's mount namespace only until the init has mounted the overlay and
// the volumes (the overlay clones its layers' mounts, a bind holds its
// source): release removes them. The rootfs mount point stays until the
// container is removed: removing a directory lazily unmounts what other
// mount namespaces have mounted on it, here the container's "/". A volume
// the kubelet asks to be idmapped (uid/gid mappings on the mount, always
// the pod's) gets an idmapped bind too, recursive. The pod's files (hosts,
// resolv.conf, hostname, /dev/shm) are reached through a bind of podDir
// (which sandbox makes 0710 for the pod's root group).
func prepareIDMap(dir, base, podDir, userns string, raw json.RawMessage, layers []string, devShm string) (_ *idmapped, retErr error) {
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	if userns == "" {
		return &idmapped{spec: raw, layers: layers, upper: upper, work: work, devShm: devShm}, nil
	}
	var s specs.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	if base == "" {
		return nil, fmt.Errorf("user namespace %s: no directory for idmapped mounts is configured", userns)
	}
	rootUID, ok := hostIDOf0(s.Linux.UIDMappings)
	rootGID, ok2 := hostIDOf0(s.Linux.GIDMappings)
	if !ok || !ok2 {
		return nil, fmt.Errorf("user namespace %s: container root has no mapping in the spec", userns)
	}
	nsf, err := os.Open(userns)
	if err != nil {
		return nil, fmt.Errorf("open user namespace: %w", err)
	}
	defer nsf.Close()
	for _, d := range []string{upper, work} {
		if err := os.Lchown(d, int(rootUID), int(rootGID)); err != nil {
			return nil, fmt.Errorf("give %s to container root: %w", d, err)
		}
	}
	cdir := filepath.Join(base, filepath.Base(dir))
	if err := os.MkdirAll(base, 0o711); err != nil {
		return nil, err
	}
	if err := os.Mkdir(cdir, 0o710); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if err := os.Lchown(cdir, 0, int(rootGID)); err != nil {
		return nil, err
	}
	rootfs := filepath.Join(cdir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	s.Root.Path = rootfs
	out := &idmapped{}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, out.release())
		}
	}()
	// overlayfs wants upper and work on one mount: the container's dir
	// is bound whole, and opened to container root's group as cdir is.
	if err := os.Lchown(dir, 0, int(rootGID)); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		return nil, err
	}
	c := filepath.Join(cdir, "c")
	if err := os.Mkdir(c, 0o700); err != nil {
		return out, err
	}
	out.mounts = append(out.mounts, c)
	if err := unix.Mount(dir, c, "", unix.MS_BIND, ""); err != nil {
		return out, fmt.Errorf("bind %s: %w", dir, err)
	}
	out.upper, out.work = filepath.Join(c, "upper"), filepath.Join(c, "work")
	for i, l := range layers {
		p := filepath.Join(cdir, "l"+strconv.Itoa(i))
		if err := idmapBind(l, p, int(nsf.Fd()), false); err != nil {
			return out, err
		}
		out.mounts = append(out.mounts, p)
		out.layers = append(out.layers, p)
	}
	podBind := ""
	inPod := func(p string) (string, error) {
		rel, err := filepath.Rel(podDir, p)
		if podDir == "" || p == "" || err != nil || !filepath.IsLocal(rel) {
			return p, nil
		}
		if podBind == "" {
			podBind = filepath.Join(cdir, "p")
			if err := os.Mkdir(podBind, 0o700); err != nil {
				return "", err
			}
			out.mounts = append(out.mounts, podBind)
			// Recursive: the pod's /dev/shm is a tmpfs mounted there.
			if err := unix.Mount(podDir, podBind, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return "", fmt.Errorf("bind %s: %w", podDir, err)
			}
		}
		return filepath.Join(podBind, rel), nil
	}
	if out.devShm, err = inPod(devShm); err != nil {
		return out, err
	}
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if m.Source, err = inPod(m.Source); err != nil {
			return out, err
		}
		if len(m.UIDMappings) == 0 && len(m.GIDMappings) == 0 {
			continue
		}
		p := filepath.Join(cdir, "v"+strconv.Itoa(i))
		if err := idmapBind(m.Source, p, int(nsf.Fd()), true); err != nil {
			return out, fmt.Errorf("volume %s: %w", m.Destination, err)
		}
		out.mounts = append(out.mounts, p)
		// The init binds the idmapped view; the mappings were ours to
		// apply, not the init's.
		m.Source, m.UIDMappings, m.GIDMappings = p, nil, nil
	}
	if out.spec, err = json.Marshal(&s); err != nil {
		return out, err
	}
	return out, nil
}

func hostIDOf0(ms []specs.LinuxIDMapping) (uint32, bool) {
	for _, m := range ms {
		if m.ContainerID == 0 && m.Size > 0 {
			return m.HostID, true
		}
	}
	return 0, false
}

// idmapBind binds src at dst (made here: a file for a file source),
// idmapped with the user namespace usernsFD.
func idmapBind(src, dst string, usernsFD int, recursive bool) error {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFD)}
	setFlags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
		setFlags |= unix.AT_RECURSIVE
	} else {
		// Layers are only ever read through the overlay.
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, flags)
	if err != nil {
		return fmt.Errorf("idmap %s: open_tree: %w", src, err)
	}
	defer unix.Close(tree)
	if err := unix.MountSetattr(tree, "", setFlags, attr); err != nil {
		return fmt.Errorf("idmap %s: mount_setattr (does its filesystem support idmapped mounts?): %w", src, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return fmt.Errorf("idmap %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.Mkdir(dst, 0o700)
	} else {
		var f *os.File
		if f, err = os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("idmap %s: mount point: %w", src, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		os.Remove(dst)
		return fmt.Errorf("idmap %s: attach at %s: %w", src, dst, err)
	}
	return nil
}

// release detaches the idmapped binds and removes their mount points.
func (d *idmapped) release() error {
	var errs []error
	for _, p := range d.mounts {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	d.mounts = nil
	return errors.Join(errs...)
}

// releaseIDMaps detaches whatever is still mounted in a container's dir
// under base (a start cut short), and removes all of it but the rootfs
// mount point; all when all is set (the container is being removed).
func releaseIDMaps(base, id string, all bool) error {
	if base == "" {
		return nil
	}
	cdir := filepath.Join(base, id)
	ents, err := os.ReadDir(cdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	d := &idmapped{}
	for _, e := range ents {
		if e.Name() != "rootfs" || all {
			d.mounts = append(d.mounts, filepath.Join(cdir, e.Name()))
		}
	}
	if err := d.release(); err != nil || !all {
		return err
	}
	if err := os.Remove(cdir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeContainerDir removes a container's directory and its idmap dir
// under base (the binds there detached first, never removed through).
func removeContainerDir(base, dir string) error {
	if err := releaseIDMaps(base, filepath.Base(dir), true); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return os.RemoveAll(dir)
}

// ProbeIDMap tells whether a container of a hostUsers: false pod could
// start here: an idmapped bind of src (a directory on the filesystem of
// the container store and image layers) with the user namespace pinned at
// userns, made at scratch (a directory to create) and taken away again,
// on a kernel whose overlayfs takes idmapped layers (5.19).
func ProbeIDMap(src, scratch, userns string) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("kernel release %q: %w", unix.ByteSliceToString(u.Release[:]), err)
	}
	if major < 5 || major == 5 && minor < 19 {
		return fmt.Errorf("Linux %d.%d: overlayfs takes idmapped layers from 5.19", major, minor)
	}
	nsf, err := os.Open(userns)
	if err != nil {
		return err
	}
	defer nsf.Close()
	if err := idmapBind(src, scratch, int(nsf.Fd()), false); err != nil {
		return err
	}
	return (&idmapped{mounts: []string{scratch}}).release()
}
