package shim

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// unixPair is a connected unix stream socket pair, as a session has.
func unixPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	dir := t.TempDir()
	l, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if client, err = net.Dial("unix", dir+"/s"); err != nil {
		t.Fatal(err)
	}
	if server, err = l.Accept(); err != nil {
		t.Fatal(err)
	}
	return client, server
}

// TestWriteInputClientGone: a stdin write into a pipe nobody reads gives up
// once the session's client has closed its end, and not before.
func TestWriteInputClientGone(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	client, server := unixPair(t)
	defer server.Close()
	if peerGone(server) {
		t.Fatal("peerGone with the client still connected")
	}
	stallThenLeave(t, client, server, w)
	// A process that closed its stdin: the data is dropped with an error,
	// not retried.
	r.Close()
	if err := writeInput(server, w, []byte("x")); err == nil || errors.Is(err, errClientGone) {
		t.Fatalf("write to a closed pipe: %v", err)
	}
}

// TestWriteInputTerminal: a pty master received from an init (as the shim
// gets one) takes write deadlines, so a stdin write into a terminal whose
// process reads nothing gives up once the client has left.
func TestWriteInputTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	// Raw mode, as an editor's: a full input queue then blocks the writer
	// (canonical mode drops what does not fit instead).
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag &^= unix.ICANON | unix.ECHO | unix.ISIG
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	defer a.Close()
	defer b.Close()
	if err := initmsg.SendConsole(a, ptmx); err != nil {
		t.Fatal(err)
	}
	master, err := initmsg.RecvConsole(b)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()

	client, server := unixPair(t)
	defer server.Close()
	stallThenLeave(t, client, server, master)
}

// stallThenLeave writes more than w takes into it for the session on
// server: the write must still block after a few stalls, and end with
// errClientGone once client has closed its end.
func stallThenLeave(t *testing.T, client, server net.Conn, w *os.File) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- writeInput(server, w, make([]byte, 1<<20)) }()
	select {
	case err := <-done:
		t.Fatalf("writeInput returned with its file full and the client there: %v", err)
	case <-time.After(2*inputStall + 500*time.Millisecond):
	}
	client.Close()
	select {
	case err := <-done:
		if !errors.Is(err, errClientGone) {
			t.Fatalf("writeInput: %v, want errClientGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writeInput still blocked after the client left")
	}
}
