package shimapi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFrame(&b, FrameStdout, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&b, FrameExit, nil); err != nil {
		t.Fatal(err)
	}
	typ, data, err := ReadFrame(&b)
	if err != nil || typ != FrameStdout || string(data) != "hello" {
		t.Fatalf("first frame: %d %q %v", typ, data, err)
	}
	typ, data, err = ReadFrame(&b)
	if err != nil || typ != FrameExit || len(data) != 0 {
		t.Fatalf("second frame: %d %q %v", typ, data, err)
	}
	if _, _, err := ReadFrame(&b); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
	// A length beyond the bound is refused before anything is allocated.
	hdr := []byte{FrameStdin, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], maxAttachFrame+1)
	if _, _, err := ReadFrame(bytes.NewReader(hdr)); err == nil {
		t.Fatal("an oversized frame was accepted")
	}
	// A frame cut short is an error, not a short read.
	if _, _, err := ReadFrame(bytes.NewReader([]byte{FrameStdout, 0, 0, 0, 9, 'x'})); err == nil {
		t.Fatal("a truncated frame was accepted")
	}
}

func TestErrorFrame(t *testing.T) {
	for _, kind := range []error{errdefs.ErrInvalidArgument, errdefs.ErrFailedPrecondition, errdefs.ErrNotFound} {
		err := ParseErrorFrame(ErrorFrame(fmt.Errorf("start: %w", kind)))
		if !errors.Is(err, kind) || !strings.Contains(err.Error(), "start") {
			t.Errorf("%v: round trip gave %v", kind, err)
		}
	}
	err := ParseErrorFrame(ErrorFrame(errors.New("exec: no such file")))
	if err.Error() != "exec: no such file" || errdefs.IsNotFound(err) || errdefs.IsInvalidArgument(err) {
		t.Errorf("plain error: %v", err)
	}
	if ParseErrorFrame(nil) == nil || ParseErrorFrame([]byte{200, 'x'}).Error() != "x" {
		t.Error("malformed error frames")
	}
}
