package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/internal/memrelease"
	"github.com/crib-runtime/crib/rdt"
)

func TestStatusTransitions(t *testing.T) {
	for _, tc := range []struct {
		from, to Status
		ok       bool
	}{
		{StatusCreated, StatusRunning, true}, {StatusCreated, StatusExited, true},
		{StatusRunning, StatusExited, true}, {StatusRunning, StatusCreated, false},
		{StatusExited, StatusRunning, false}, {StatusExited, StatusExited, false},
	} {
		if got := tc.from.canBecome(tc.to); got != tc.ok {
			t.Errorf("%s → %s: %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
	b, _ := json.Marshal(record{Status: StatusRunning})
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.Status != StatusRunning || !strings.Contains(string(b), `"running"`) {
		t.Fatalf("record round trip: %s → %v, %v", b, r.Status, err)
	}
	if err := json.Unmarshal([]byte(`{"status":"paused"}`), &r); err == nil {
		t.Fatal("unknown status accepted")
	}
}

func TestExitCode(t *testing.T) {
	if got := exitCode(unix.WaitStatus(3 << 8)); got != 3 {
		t.Errorf("exit 3: %d", got)
	}
	if got := exitCode(unix.WaitStatus(unix.SIGKILL)); got != 137 {
		t.Errorf("SIGKILL: %d", got)
	}
}

// TestResctrlPlacer places into a class group and a monitoring group of
// a directory shaped like a resctrl mount.
func TestResctrlPlacer(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "resctrl")
	for _, f := range []string{"tasks", "crib-gold/tasks", "info/L3_MON/num_rmids"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	line := "40 25 0:36 / " + root + " rw,relatime shared:20 - resctrl resctrl rw\n"
	p, err := openResctrl(strings.NewReader(line))
	if err != nil || p == nil {
		t.Fatalf("openResctrl: %v, %v", p, err)
	}
	// The fake has no kernel to create tasks in a new mon group.
	mon := filepath.Join(root, "crib-gold", "mon_groups", "c1")
	if err := os.MkdirAll(mon, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mon, "tasks"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if warn, err := p.Place("gold", "c1", 42); err != nil || warn != nil {
		t.Fatalf("Place: %v, %v", warn, err)
	}
	for _, f := range []string{"crib-gold/tasks", "crib-gold/mon_groups/c1/tasks"} {
		if b, _ := os.ReadFile(filepath.Join(root, f)); string(b) != "42" {
			t.Errorf("%s = %q", f, b)
		}
	}
	if _, err := p.Place("silver", "c1", 42); err == nil {
		t.Error("placed in a class that does not exist")
	}
	if _, err := p.Place(rdt.RootClass, "", 43); err != nil {
		t.Errorf("root class: %v", err)
	}
	_ = os.Remove(filepath.Join(mon, "tasks"))
	if err := p.RemoveMonGroup("gold", "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mon); !os.IsNotExist(err) {
		t.Errorf("monitoring group still there: %v", err)
	}
}

// A handler that panics fails its call with Internal; the process, and
// every other pod it serves, lives on.
func TestInterceptRecoversPanics(t *testing.T) {
	call := intercept(klog.Background(), memrelease.New(time.Hour))
	info := &ttrpc.UnaryServerInfo{FullMethod: "/crib.shim.v1.Shim/State"}
	resp, err := call(context.Background(), nil, info, func(context.Context, func(any) error) (any, error) {
		var c *container
		return c.id, nil // a nil dereference
	})
	if resp != nil || status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "shim panicked") {
		t.Fatalf("panicking handler: %v, %v; want Internal", resp, err)
	}
	resp, err = call(context.Background(), nil, info, func(context.Context, func(any) error) (any, error) {
		return "fine", nil
	})
	if resp != "fine" || err != nil {
		t.Fatalf("next call: %v, %v", resp, err)
	}
}

// A zombie started from a launch's binaries may be a launch's final
// process, killed before its launcher knew its pid; another is an orphan.
func TestMayBeLaunched(t *testing.T) {
	dir := t.TempDir()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"crib-init": true, "crib-shim": true, "sleep": false, "crib-initx": false} {
		bin := filepath.Join(dir, name)
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Process.Kill()
		// A zombie until waited for: what a reaping pass sees.
		for deadline := time.Now().Add(5 * time.Second); !isZombie(cmd.Process.Pid) && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if got := mayBeLaunched(cmd.Process.Pid); got != want {
			t.Errorf("%s: mayBeLaunched = %v, want %v", name, got, want)
		}
		_ = cmd.Wait()
	}
}

func isZombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndex(string(data), ") ")
	return i > 0 && strings.HasPrefix(string(data)[i+2:], "Z")
}
