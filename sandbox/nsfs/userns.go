package nsfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// User is the user namespace kind: a pod with hostUsers: false pins one.
const User Kind = "user"

// IDMap is one line of a user namespace's uid_map or gid_map: Length ids
// from ContainerID inside are HostID… outside.
type IDMap struct {
	ContainerID, HostID, Length uint32
}

// UserMaps are a user namespace's mappings.
type UserMaps struct {
	UIDs, GIDs []IDMap
}

// PinUser creates a user namespace with maps and, inside it, one new
// namespace of each kind, and pins them all at dir/<kind> (dir/user for the
// user namespace). The others are owned by the user namespace, so that root
// in a container of the pod has capabilities over its network, IPC and UTS
// namespaces, and a pod's containers can join them after joining the user
// namespace (setns of a namespace needs CAP_SYS_ADMIN in its owner).
//
// A multithreaded process cannot unshare a user namespace (EINVAL), so a
// child does it: holder is a command that waits until its stdin closes
// (crib runs its own binary; tests cat). Its clone creates the user
// namespace first and the others inside it; the maps are written from here
// before it execs, setgroups left at "allow" as runc and containerd leave
// it for pods (the maps come from a privileged writer, and containers
// need setgroups(2) for their supplemental groups). Once the files are
// bound, stdin is closed and the holder exits.
func PinUser(dir string, holder []string, maps UserMaps, kinds ...Kind) (paths map[Kind]string, retErr error) {
	if len(holder) == 0 {
		return nil, errors.New("pin user namespace: no holder command")
	}
	if len(maps.UIDs) == 0 || len(maps.GIDs) == 0 {
		return nil, errors.New("pin user namespace: uid and gid mappings are required")
	}
	// The user namespace's file first: the holder's clone makes it first.
	flags, paths, err := pinFiles(dir, append([]Kind{User}, kinds...))
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, unpinAll(paths))
			paths = nil
		}
	}()
	cmd := exec.Command(holder[0], holder[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  uintptr(flags),
		UidMappings: sysMaps(maps.UIDs), GidMappings: sysMaps(maps.GIDs),
		GidMappingsEnableSetgroups: true,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return paths, fmt.Errorf("pin user namespace: %w", err)
	}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return paths, fmt.Errorf("pin user namespace: start holder %s: %w", holder[0], err)
	}
	// The holder's exit status says nothing about the pins: they are made
	// or the error says why not.
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	nsDir := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/"
	for k, p := range paths {
		if err := unix.Mount(nsDir+string(k), p, "", unix.MS_BIND, ""); err != nil {
			cmd.Process.Kill()
			return paths, fmt.Errorf("pin %s namespace at %s: %w", k, p, err)
		}
	}
	return paths, nil
}

func sysMaps(m []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Length)}
	}
	return out
}

// Hold is the holder's side for crib's own binary: it waits until stdin
// closes.
func Hold() {
	var b [64]byte
	for {
		if _, err := os.Stdin.Read(b[:]); err != nil {
			return
		}
	}
}
