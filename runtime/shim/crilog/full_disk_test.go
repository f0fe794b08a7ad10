package crilog

import (
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFullDiskLeavesNoHalfLine: a write that the disk takes only part of
// (ENOSPC, or here EFBIG past RLIMIT_FSIZE, which cuts a write short the
// same way) must not leave half a line in the log: the next line, once
// there is space again, would continue it, and the kubelet could parse
// neither. The fault injection test (test/faults) found such lines after
// a full log disk.
func TestFullDiskLeavesNoHalfLine(t *testing.T) {
	f, path := openTest(t, MaxLine)
	out := f.Stream(Stdout)
	_, _ = out.Write([]byte("before\n"))
	size := int64(len(read(t, path)))

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	// Room for a piece of the next line only. Go ignores SIGXFSZ, so the
	// write returns EFBIG after the bytes that fit, as a full disk does
	// with ENOSPC.
	limited := old
	limited.Cur = uint64(size + 20)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited); err != nil {
		t.Fatal(err)
	}
	_, _ = out.Write([]byte(strings.Repeat("x", 100) + "\n"))
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	_, _ = out.Write([]byte("after\n"))

	var got []string
	for _, l := range parse(t, read(t, path)) {
		got = append(got, l.Content)
	}
	if diff := cmp.Diff([]string{"before", "after"}, got); diff != "" {
		t.Errorf("log after a cut-short write (-want +got):\n%s", diff)
	}
}
