package shimapi

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
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
