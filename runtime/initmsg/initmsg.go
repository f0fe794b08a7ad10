// Package initmsg is the contract between a container's launcher (the shim,
// or crib run-oci) and the Go container init (runtime/initproc) once the
// nsexec constructor has handed over: length-prefixed JSON messages on the
// init socket.
//
// Sequence for role "init":
//
//	launcher → init   Config (WriteConfig, ReadConfig: the spec without
//	                  what the init never reads, see specWire)
//	init → launcher   Message{Type: Hooks}       (only with Config.Hooks.Runtime:
//	                  the mounts are made, pivot_root is next; the
//	                  launcher runs the prestart and createRuntime hooks)
//	launcher → init   Message{Type: Resume}      (they succeeded; on failure
//	                  the launcher kills init instead)
//	init              createContainer hooks, pivot_root, …
//	init → launcher   Message{Type: Ready}       (everything set up, about to wait)
//	                  or Message{Type: Error, …} (then init exits non-zero)
//	launcher → init   Message{Type: Start}
//	init              startContainer hooks, then execve(2) of the user's process; the socket is
//	                  close-on-exec, so the launcher reads EOF on success, or
//	                  a Message{Type: Error, Step: "exec"} when execve fails.
//
// When the process has a terminal (Spec.Process.Terminal), init sends the
// pty master right before Ready: one byte carrying the fd as SCM_RIGHTS
// (SendConsole, RecvConsole).
//
// Role "exec" is the same without mounts: the process joins a running
// container, so Config.Rootfs is empty and only Spec.Process is used. Its
// launcher may send Start right behind the Config, before Ready: the init
// reads it once it is ready.
//
// It imports only the standard library, x/sys and runtime-spec, so both sides can
// use it without importing each other. Internal to crib; no API
// compatibility promised.
package initmsg

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Version is bumped on any incompatible change of Config or Message.
// Version 2 is a config with a compiled seccomp filter (Config.Seccomp):
// an init of version 1 would not know the field and run the process
// unfiltered, so WriteConfig sends such a config as version 2, which it
// refuses. Version 3 is a config with OCI hooks (Config.Hooks), which an
// older init would skip without a word; an init of version 3 also knows
// the filter. Other configs still go as version 1, which all accept.
const (
	Version              = 1
	VersionSeccompFilter = 2
	VersionHooks         = 3
)

// Environment variables the launcher sets for crib init.
const (
	// EnvInitPipe names the fd of the init socket (a SOCK_STREAM socketpair end).
	EnvInitPipe = "_CRIB_INITPIPE"
	// EnvLogPipe names the fd where nsexec and init write JSON log lines.
	EnvLogPipe = "_CRIB_LOGPIPE"
)

// Roles, as the bootstrap message also carries them.
const (
	RoleInit = "init"
	RoleExec = "exec"
)

// Config tells init what to build and run.
type Config struct {
	Version int    `json:"version"`
	Role    string `json:"role"`
	// Spec is the container's OCI runtime spec. Root.Path is where the
	// rootfs is (or will be) mounted, on the host; Process is what runs.
	Spec *specs.Spec `json:"spec"`
	// Rootfs, when Lower is set, asks init to mount an overlay of Lower
	// (top layer first, as overlayfs lists lowerdir) with Upper and Work at
	// Spec.Root.Path inside the container's mount namespace. Without it,
	// Spec.Root.Path must already hold the rootfs (a bundle's directory).
	Rootfs Rootfs `json:"rootfs"`
	// DevShm, when set, is a host path bind-mounted at /dev/shm (the pod's
	// shared one) instead of a fresh tmpfs.
	DevShm string `json:"devShm,omitempty"`
	// Seccomp, when set, is the process's seccomp filter, compiled from a
	// profile the spec then leaves out (Spec.Linux.Seccomp nil): init
	// refuses a config with both.
	Seccomp *SeccompFilter `json:"seccompFilter,omitempty"`
	// CgroupMounts, when set, are the host's cgroup hierarchies (cgroup v1
	// and hybrid hosts): what init would otherwise find in
	// /proc/self/mountinfo, whose reading grows with every pod's mounts.
	CgroupMounts []CgroupMount `json:"cgroupMounts,omitempty"`
	// Hooks, when set, are the OCI hooks the init takes part in (role
	// init only); it needs version VersionHooks.
	Hooks *Hooks `json:"containerHooks,omitempty"`
}

// Hooks are the container's OCI hooks as far as the init is concerned.
// The launcher runs prestart and createRuntime itself, in its own
// namespaces, while the init waits before pivot_root (Runtime); the init
// runs createContainer (in the container's namespaces, before pivot_root,
// so paths are the host's) and startContainer (after pivot_root, as the
// container's user, just before execve: paths are the container's). The
// hooks are host binaries named by root-owned configuration (NRI plugins,
// CDI spec directories), never by a CRI client.
type Hooks struct {
	// Runtime makes the init stop before pivot_root, send TypeHooks and
	// wait for TypeResume.
	Runtime         bool         `json:"runtime,omitempty"`
	CreateContainer []specs.Hook `json:"createContainer,omitempty"`
	StartContainer  []specs.Hook `json:"startContainer,omitempty"`
	// State is the container's state for the hooks' stdin; the init sets
	// Status and Pid (its own, as it sees it) for each kind.
	State specs.State `json:"state"`
}

// CgroupMount is one cgroup hierarchy mounted directly under
// /sys/fs/cgroup on the host.
type CgroupMount struct {
	MountPoint string `json:"mountPoint"`
	// Root is the mount's root within its hierarchy ("/" on most hosts;
	// deeper inside a container, such as a kind node).
	Root   string `json:"root"`
	FSType string `json:"fsType"` // cgroup or cgroup2
	// Controllers are a v1 hierarchy's controllers and name=, sorted as
	// /proc/self/cgroup lists them.
	Controllers []string `json:"controllers,omitempty"`
}

// Rootfs describes an overlay rootfs.
type Rootfs struct {
	Lower []string `json:"lower,omitempty"`
	Upper string   `json:"upper,omitempty"`
	Work  string   `json:"work,omitempty"`
}

// ImageSubPathOption, followed by a path, is the option of a spec mount of
// type "overlay" (an image volume: a read-only view of lowerdir layers)
// that names the image's directory to mount instead of its root (CRI
// image_sub_path); init resolves it inside the view. Like mount(8)'s "x-"
// options it is for the runtime and never reaches the kernel.
const ImageSubPathOption = "x-crib.image-subpath="

// MessageType says what a Message means.
type MessageType string

// The message types.
const (
	TypeReady  MessageType = "ready"
	TypeStart  MessageType = "start"
	TypeError  MessageType = "error"
	TypeHooks  MessageType = "hooks"
	TypeResume MessageType = "resume"
)

// Message is everything init and its launcher say to each other after Config.
type Message struct {
	Type MessageType `json:"type"`
	// Step names what failed: "mount", "pivot_root", "sysctl", "rlimit",
	// "user", "cwd", "exec", ….
	Step string `json:"step,omitempty"`
	// Path is the file or mount point the step was working on.
	Path string `json:"path,omitempty"`
	// Errno is the kernel's error number, 0 when there was none.
	Errno int `json:"errno,omitempty"`
	// Error is the full message, as init would print it.
	Error string `json:"error,omitempty"`
}

// MarshalJSON encodes m as encoding/json would, field by field: a fresh
// init sends one or two messages, and building the reflected encoder of
// the struct cost it ~0.2 ms of each container start.
func (m Message) MarshalJSON() ([]byte, error) {
	b := append([]byte(`{"type":`), jsonString(string(m.Type))...)
	if m.Step != "" {
		b = append(append(b, `,"step":`...), jsonString(m.Step)...)
	}
	if m.Path != "" {
		b = append(append(b, `,"path":`...), jsonString(m.Path)...)
	}
	if m.Errno != 0 {
		b = strconv.AppendInt(append(b, `,"errno":`...), int64(m.Errno), 10)
	}
	if m.Error != "" {
		b = append(append(b, `,"error":`...), jsonString(m.Error)...)
	}
	return append(b, '}'), nil
}

// jsonString is s as a JSON string: encoding/json's string encoder, which
// needs no reflection over a struct.
func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

// InitError is an Error message as a Go error, for the launcher.
type InitError struct {
	Step, Path, Msg string
	Errno           int
}

func (e *InitError) Error() string { return e.Msg }

// Err returns the message as an *InitError, or nil if it is not an error.
func (m *Message) Err() error {
	if m.Type != TypeError {
		return nil
	}
	return &InitError{Step: m.Step, Path: m.Path, Msg: m.Error, Errno: m.Errno}
}

// maxMessage bounds one message: a spec with thousands of mounts and env
// entries stays far below it, and a corrupt length cannot make us allocate
// gigabytes.
const maxMessage = 16 << 20

// Write sends v as one length-prefixed JSON message.
func Write(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode init message: %w", err)
	}
	buf := make([]byte, 4, 4+len(data))
	binary.BigEndian.PutUint32(buf, uint32(len(data)))
	if _, err := w.Write(append(buf, data...)); err != nil {
		return fmt.Errorf("send init message: %w", err)
	}
	return nil
}

// Read receives one message into v. A clean EOF before any byte is io.EOF.
func Read(r io.Reader, v any) error {
	data, err := readFrame(r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode init message: %w", err)
	}
	return nil
}

// readFrame receives one length-prefixed message.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("receive init message: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxMessage {
		return nil, fmt.Errorf("receive init message: length %d exceeds %d", n, maxMessage)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("receive init message: %w", err)
	}
	return data, nil
}

// SendConsole sends a pty master over the init socket: one byte with the fd
// attached (SCM_RIGHTS).
func SendConsole(sock, master *os.File) error {
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(int(sock.Fd()), []byte{'C'}, rights, nil, 0); err != nil {
		return fmt.Errorf("send pty master: %w", err)
	}
	return nil
}

// RecvConsole receives the pty master SendConsole sent.
func RecvConsole(sock *os.File) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	if n != 1 || buf[0] != 'C' {
		return nil, fmt.Errorf("receive pty master: got %q instead", buf[:n])
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive pty master: no control message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
		return nil, fmt.Errorf("receive pty master: want one fd, got %d (%v)", len(fds), err)
	}
	// Non-blocking before os.NewFile, so the file is pollable: reads and
	// writes get deadlines (a drain that gives up, a stdin write that
	// notices its client left) instead of holding a thread for ever. The
	// flag is the open file's, so dups of it (a container's stdin) share it.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		_ = unix.Close(fds[0])
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}
