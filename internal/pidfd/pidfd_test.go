package pidfd

import (
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSignalListed: a listed child is signalled; a pid that the second
// read no longer lists (it went away, or its number now names a process
// outside the cgroup) is not.
func TestSignalListed(t *testing.T) {
	listed := exec.Command("sleep", "60")
	unlisted := exec.Command("sleep", "60")
	for _, c := range []*exec.Cmd{listed, unlisted} {
		if err := c.Start(); err != nil {
			t.Skipf("no sleep to run: %v", err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _, _ = c.Process.Wait() })
	}
	reads := 0
	list := func() ([]int, error) {
		reads++
		if reads == 1 {
			return []int{listed.Process.Pid, unlisted.Process.Pid}, nil
		}
		return []int{listed.Process.Pid}, nil // unlisted "left the cgroup"
	}
	if err := SignalListed(list, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- listed.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the listed process was not signalled")
	}
	if err := unlisted.Process.Signal(unix.Signal(0)); err != nil {
		t.Fatalf("the process the second read did not list was signalled: %v", err)
	}
	if reads != 2 {
		t.Fatalf("list read %d times, want 2", reads)
	}
}

func TestParsePids(t *testing.T) {
	if got := ParsePids("1\n22\nx\n333\n"); len(got) != 3 || got[2] != 333 {
		t.Fatalf("ParsePids = %v", got)
	}
}

// TestSignalListedInBatches: more processes than one batch of pidfds are
// all signalled, and no more than a batch of pidfds is open at once.
func TestSignalListedInBatches(t *testing.T) {
	defer func(b int) { batch = b }(batch)
	batch = 2
	var cmds []*exec.Cmd
	var pids []int
	for range 5 {
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			t.Skipf("no sleep to run: %v", err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _, _ = c.Process.Wait() })
		cmds, pids = append(cmds, c), append(pids, c.Process.Pid)
	}
	reads := 0
	list := func() ([]int, error) { reads++; return pids, nil }
	if err := SignalListed(list, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("process %d was not signalled", c.Process.Pid)
		}
	}
	// One read to list, then one per batch of two: 1 + 3.
	if reads != 4 {
		t.Errorf("list read %d times, want 4 (one per batch after the first)", reads)
	}
}
