package devfilter

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// license is the program's license string; the kernel only checks it for
// GPL-only helpers, which the program does not call.
const license = "Apache-2.0"

// The bpf(2) attribute layouts crib uses (union bpf_attr); fields past the
// last one set are zero, which the kernel accepts from any size it knows.
// The kernel's __aligned_u64 pointers are unsafe.Pointer here, so that the
// garbage collector keeps what they point at and moves them with a stack;
// that needs 8-byte pointers (the array below fails to compile otherwise).
var _ [unsafe.Sizeof(uintptr(0)) - 8]byte

type progLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       unsafe.Pointer
	license     unsafe.Pointer
	logLevel    uint32
	logSize     uint32
	logBuf      unsafe.Pointer
	kernVersion uint32
	progFlags   uint32
	progName    [16]byte
}

type progAttachAttr struct {
	targetFd     uint32
	attachBpfFd  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBpfFd uint32
}

type progQueryAttr struct {
	targetFd    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     unsafe.Pointer
	progCnt     uint32
	_           uint32
}

type getFdAttr struct {
	id       uint32
	nextID   uint32
	openFlag uint32
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		if errno == unix.EINTR || errno == unix.EAGAIN && cmd == unix.BPF_PROG_LOAD {
			continue // the verifier can be interrupted
		}
		if errno != 0 {
			return -1, errno
		}
		return int(r), nil
	}
}

// Load loads prog (Encode's output) as a BPF_PROG_TYPE_CGROUP_DEVICE
// program and returns its fd. A refusal by the verifier comes with its log.
func Load(prog []byte) (int, error) {
	if len(prog) == 0 || len(prog)%insnBytes != 0 {
		return -1, fmt.Errorf("load device program: %d bytes is not a program", len(prog))
	}
	lic := []byte(license + "\x00")
	logBuf := make([]byte, 64<<10)
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(prog) / insnBytes),
		insns:    unsafe.Pointer(&prog[0]),
		license:  unsafe.Pointer(&lic[0]),
		logLevel: 1,
		logSize:  uint32(len(logBuf)),
		logBuf:   unsafe.Pointer(&logBuf[0]),
	}
	copy(attr.progName[:], "crib_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(&attr)
	if err != nil {
		log := unix.ByteSliceToString(logBuf)
		if log != "" {
			return -1, fmt.Errorf("load device program: %w (verifier: %s)", err, log)
		}
		return -1, fmt.Errorf("load device program: %w", err)
	}
	return fd, nil
}

// Attached returns the ids of the device programs attached to the cgroup
// dirFd itself (not those of its ancestors, which also run).
func Attached(dirFd int) ([]uint32, error) {
	ids := make([]uint32, 64)
	for {
		attr := progQueryAttr{targetFd: uint32(dirFd), attachType: unix.BPF_CGROUP_DEVICE,
			progIDs: unsafe.Pointer(&ids[0]), progCnt: uint32(len(ids))}
		_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		if errors.Is(err, unix.ENOSPC) {
			ids = make([]uint32, 2*len(ids))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("query device programs: %w", err)
		}
		return ids[:attr.progCnt], nil
	}
}

// Attach makes prog the device program of the cgroup dirFd: it is attached
// (BPF_F_ALLOW_MULTI, so that a kubelet's or systemd's programs on the
// ancestors keep running too) before the programs attached there earlier
// are detached, so that the cgroup is never without one; while both run a
// device must pass both.
func Attach(dirFd int, prog []byte) error {
	old, err := Attached(dirFd)
	if err != nil {
		return err
	}
	fd, err := Load(prog)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	attr := progAttachAttr{targetFd: uint32(dirFd), attachBpfFd: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE,
		attachFlags: unix.BPF_F_ALLOW_MULTI}
	if _, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return fmt.Errorf("attach device program: %w", err)
	}
	var errs []error
	for _, id := range old {
		if err := detach(dirFd, id); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("replace device program: %w", errors.Join(errs...))
	}
	return nil
}

func detach(dirFd int, id uint32) error {
	get := getFdAttr{id: id}
	fd, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
	if errors.Is(err, unix.ENOENT) {
		return nil // gone meanwhile
	}
	if err != nil {
		return fmt.Errorf("open device program %d: %w", id, err)
	}
	defer unix.Close(fd)
	attr := progAttachAttr{targetFd: uint32(dirFd), attachBpfFd: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE}
	if _, err := bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("detach device program %d: %w", id, err)
	}
	return nil
}
