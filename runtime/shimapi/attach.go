package shimapi

import (
	"fmt"

	"encoding/binary"
	"errors"
	"github.com/containerd/errdefs"
	"io"
)

// AttachSocketName is the shim's socket for streaming sessions (attach to
// a container, or exec a process in it) in its directory. Sessions are byte
// streams, not ttrpc calls: the daemon connects, sends an AttachHeader
// line, then stdin frames; the shim sends output frames, then FrameExit.
const AttachSocketName = "attach.sock"

// Attach frame types. A frame is one type byte, a big-endian u32 length and
// that many bytes.
const (
	FrameStdin      = 0 // daemon → shim: bytes for the container's stdin
	FrameStdout     = 1 // shim → daemon
	FrameStderr     = 2 // shim → daemon
	FrameResize     = 3 // daemon → shim: u16 columns, u16 rows of the terminal
	FrameStdinClose = 4 // daemon → shim: the client closed its stdin
	// FrameExit ends the session (shim → daemon): the container exited,
	// or, in an exec session, the process did, its exit code in 4 bytes
	// (big-endian int32).
	FrameExit = 5
	// FrameError ends an exec session whose process could not be started
	// (shim → daemon): the error's kind in one byte, then its text (see
	// ErrorFrame).
	FrameError = 6
)

// errorKinds are the errdefs kinds a FrameError carries, by their byte;
// 0 is any other.
var errorKinds = []error{nil, errdefs.ErrInvalidArgument, errdefs.ErrFailedPrecondition, errdefs.ErrNotFound}

// ErrorFrame is err as a FrameError's data.
func ErrorFrame(err error) []byte {
	kind := byte(0)
	for i, k := range errorKinds {
		if k != nil && errors.Is(err, k) {
			kind = byte(i)
			break
		}
	}
	return append([]byte{kind}, err.Error()...)
}

// ParseErrorFrame is the error a FrameError's data describes, of its kind.
func ParseErrorFrame(data []byte) error {
	if len(data) == 0 {
		return errors.New("exec failed, for no reason given")
	}
	msg := string(data[1:])
	if int(data[0]) < len(errorKinds) && errorKinds[data[0]] != nil {
		return fmt.Errorf("%s: %w", msg, errorKinds[data[0]])
	}
	return errors.New(msg)
}

// AttachHeader opens a session: an attach to container ID, or, with Exec,
// a new process in a container. The streams say which the client wants.
type AttachHeader struct {
	ID     string `json:"id"`
	Stdin  bool   `json:"stdin"`
	Stdout bool   `json:"stdout"`
	Stderr bool   `json:"stderr"`
	// Exec starts a process instead of attaching; ID stays empty, so a
	// shim that predates exec sessions finds no container and ends the
	// session with an empty FrameExit rather than attaching.
	Exec *ExecHeader `json:"exec,omitempty"`
}

// ExecHeader is the process an exec session starts.
type ExecHeader struct {
	ID string `json:"id"`
	// Process is the OCI process spec, JSON; with Terminal, the process
	// gets a pty, and stdout carries both of its outputs.
	Process []byte `json:"process"`
}

// maxAttachFrame bounds one frame.
const maxAttachFrame = 1 << 20

// WriteFrame writes one attach frame.
func WriteFrame(w io.Writer, typ byte, data []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(data)))
	if _, err := w.Write(append(hdr[:], data...)); err != nil {
		return err
	}
	return nil
}

// ReadFrame reads one attach frame.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxAttachFrame {
		return 0, nil, errors.New("attach frame too large")
	}
	data := make([]byte, n)
	_, err := io.ReadFull(r, data)
	return hdr[0], data, err
}
