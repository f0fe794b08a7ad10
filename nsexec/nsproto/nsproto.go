package nsproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Namespace is one namespace to join: by Path (an nsfs file such as a pinned
// /run/crib/ns/<pod>/net, or /proc/<pid>/ns/net) or by FD, an nsfs file the
// launcher opened and passes down (so a recycled pid cannot redirect it).
type Namespace struct {
	Type uint32 // one CLONE_NEW* flag
	Path string
	FD   int // used when Path is empty
}

// Bootstrap is the message the launcher writes to stage 0.
type Bootstrap struct {
	Role       uint32 // RoleInit, RoleExec or RolePause
	CloneFlags uint32 // CLONE_NEW* flags of the namespaces to create
	Namespaces []Namespace
	// OOMScoreAdj, when set, is written by stage 0 before it joins anything.
	OOMScoreAdj *int
	// CgroupTasks are inherited fds of cgroup v1 tasks files that stage 0
	// writes "0" to first; Cgroup2FD (0: none) is a cgroup v2 directory the
	// final process is cloned into.
	CgroupTasks []int
	Cgroup2FD   int
}

// Marshal encodes b. It checks only what it must to produce a well-formed
// message; the constructor validates the meaning.
func (b *Bootstrap) Marshal() ([]byte, error) {
	var attrs []byte
	put := func(typ uint16, val []byte) {
		attrs = binary.LittleEndian.AppendUint16(attrs, typ)
		attrs = binary.LittleEndian.AppendUint16(attrs, uint16(len(val)))
		attrs = append(attrs, val...)
	}
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	put(AttrRole, u32(b.Role))
	if b.CloneFlags != 0 {
		put(AttrCloneFlags, u32(b.CloneFlags))
	}
	for _, ns := range b.Namespaces {
		if ns.Path != "" {
			if len(ns.Path) > PathMax {
				return nil, fmt.Errorf("bootstrap: namespace path %.64q… is longer than %d bytes", ns.Path, PathMax)
			}
			put(AttrNsPath, append(u32(ns.Type), ns.Path...))
			continue
		}
		put(AttrNsFd, append(u32(ns.Type), u32(uint32(int32(ns.FD)))...))
	}
	if b.OOMScoreAdj != nil {
		put(AttrOomScoreAdj, u32(uint32(int32(*b.OOMScoreAdj))))
	}
	if len(b.CgroupTasks) > MaxCgroupTasks {
		return nil, fmt.Errorf("bootstrap: %d cgroup hierarchies exceed %d", len(b.CgroupTasks), MaxCgroupTasks)
	}
	for _, fd := range b.CgroupTasks {
		put(AttrCgroupTasksFd, u32(uint32(int32(fd))))
	}
	if b.Cgroup2FD != 0 {
		put(AttrCgroup2Fd, u32(uint32(int32(b.Cgroup2FD))))
	}
	if len(attrs) > BootstrapMax {
		return nil, fmt.Errorf("bootstrap: message of %d bytes exceeds %d", len(attrs), BootstrapMax)
	}
	msg := make([]byte, 0, HeaderSize+len(attrs))
	msg = binary.LittleEndian.AppendUint32(msg, BootstrapMagic)
	msg = binary.LittleEndian.AppendUint32(msg, BootstrapVersion)
	msg = binary.LittleEndian.AppendUint32(msg, uint32(len(attrs)))
	return append(msg, attrs...), nil
}

// Sync is one sync message.
type Sync struct {
	Type    uint32
	Payload []byte
}

// ErrClosed reports that the other end closed the init socket between messages.
var ErrClosed = errors.New("init socket closed")

// ReadSync reads one sync message.
func ReadSync(r io.Reader) (Sync, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return Sync{}, ErrClosed
		}
		return Sync{}, fmt.Errorf("read sync message: %w", err)
	}
	s := Sync{Type: binary.LittleEndian.Uint32(hdr[:4])}
	n := binary.LittleEndian.Uint32(hdr[4:])
	if n > SyncMax {
		return Sync{}, fmt.Errorf("read sync message: payload of %d bytes exceeds %d", n, SyncMax)
	}
	s.Payload = make([]byte, n)
	if _, err := io.ReadFull(r, s.Payload); err != nil {
		return Sync{}, fmt.Errorf("read sync message %d: %w", s.Type, err)
	}
	return s, nil
}

// WriteSync writes one sync message.
func WriteSync(w io.Writer, typ uint32, payload []byte) error {
	msg := binary.LittleEndian.AppendUint32(nil, typ)
	msg = binary.LittleEndian.AppendUint32(msg, uint32(len(payload)))
	if _, err := w.Write(append(msg, payload...)); err != nil {
		return fmt.Errorf("write sync message %d: %w", typ, err)
	}
	return nil
}

// Pids decodes a SyncPid payload: the final process and stage 0, as the
// host sees them, and the Pid* flags.
func (s Sync) Pids() (final, stage0 int, flags uint32, err error) {
	if s.Type != SyncPid || len(s.Payload) != 12 {
		return 0, 0, 0, fmt.Errorf("sync message %d of %d bytes is not a pid report", s.Type, len(s.Payload))
	}
	le := binary.LittleEndian
	return int(int32(le.Uint32(s.Payload))), int(int32(le.Uint32(s.Payload[4:]))), le.Uint32(s.Payload[8:]), nil
}

// Pid decodes a SyncUsermapReq payload.
func (s Sync) Pid() (int, error) {
	if len(s.Payload) != 4 {
		return 0, fmt.Errorf("sync message %d of %d bytes carries no pid", s.Type, len(s.Payload))
	}
	return int(int32(binary.LittleEndian.Uint32(s.Payload))), nil
}
