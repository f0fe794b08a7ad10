package launch_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/launch"
)

// TestStage0KilledBeforeReport: a stage 0 that dies after cloning the
// final process and before reporting it ends the launch at once, with
// nothing left running. The final process holds the init socket while it
// waits for the launcher, so no EOF ended the read: the launch hung until
// its caller's deadline, with the shim's reaper held all that time (the
// fault injection test, test/faults, killed a starting container's
// processes and found every exit in the pod unrecorded for 20 s). A
// script stands in for stage 0: it leaves a child holding the socket (as
// the final process would, until the socket ends) and exits.
func TestStage0KilledBeforeReport(t *testing.T) {
	testBinary(t) // root, as the other launch tests
	stage0 := filepath.Join(t.TempDir(), "stage0")
	if err := os.WriteFile(stage0, []byte("#!/bin/sh\ncat <&3 >/dev/null &\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := children(t)
	ended := make(chan error, 1)
	go func() {
		p, err := launch.Start(context.Background(), launch.Options{Binary: stage0, Role: nsproto.RolePause})
		if err == nil {
			_, _ = p.Wait()
		}
		ended <- err
	}()
	var err error
	select {
	case err = <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the launch of a stage 0 that died still waits after 10 s")
	}
	if err == nil || !strings.Contains(err.Error(), "exited before it reported") {
		t.Fatalf("launch whose stage 0 died: %v; want its own error", err)
	}
	if after := children(t); len(after) != len(before) {
		t.Fatalf("children before %v, after %v", before, after)
	}
}
