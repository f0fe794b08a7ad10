package shim

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestWriteInputClientGone: a stdin write into a pipe nobody reads gives up
// once the session's client has closed its end, and not before.
func TestWriteInputClientGone(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	dir := t.TempDir()
	l, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if peerGone(server) {
		t.Fatal("peerGone with the client still connected")
	}
	done := make(chan error, 1)
	go func() { done <- writeInput(server, w, make([]byte, 1<<20)) }()
	select {
	case err := <-done:
		t.Fatalf("writeInput returned with the pipe full and the client there: %v", err)
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
	// A process that closed its stdin: the data is dropped with an error,
	// not retried.
	r.Close()
	if err := writeInput(server, w, []byte("x")); err == nil || errors.Is(err, errClientGone) {
		t.Fatalf("write to a closed pipe: %v", err)
	}
}
