package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// fault injects round r's fault besides the daemon kill, in turn: a
// shim's kill, a container init's kill during StartContainer, a pull on a
// full disk, log writes on a full disk. It returns what it did.
func (x *chaos) fault(r int) string {
	switch r % 4 {
	case 0:
		return x.killShim()
	case 1:
		return x.killAnInit()
	case 2:
		return x.pullOnFullDisk()
	default:
		return x.logOnFullDisk()
	}
}

// procsHierarchy is the cgroup hierarchy where containers' processes are
// listed: v1's memory hierarchy (crib's v1 manager makes every
// container's cgroup there), else the unified one.
func procsHierarchy(t *testing.T) string {
	var unified string
	for _, m := range harness.CgroupMounts() {
		if m.Type == "cgroup" && strings.Contains(","+m.Options+",", ",memory,") {
			return m.Dir
		}
		if m.Type == "cgroup2" {
			unified = m.Dir
		}
	}
	if unified == "" {
		t.Fatal("no cgroup hierarchy lists the containers' processes")
	}
	return unified
}

// killShim kills -9 the shim process of a running pod that nobody is
// stopping and whose sleeper has started. The process serves other pods
// too ([shim] pods_per_shim): each is marked, with the workers held for
// the moment of the kill, so that no pod is handed to the process between
// the look and the kill unmarked. They go on at once after.
func (x *chaos) killShim() string {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		x.gate.Lock()
		x.mu.Lock()
		var live []*pod
		for _, p := range x.pods {
			if p.ran && !p.stopAsked && !p.removed && !p.shimKilled && p.worker >= 0 && len(p.ctrs) > 1 && p.ctrs[1].started {
				live = append(live, p)
			}
		}
		var pid int
		var p *pod
		if len(live) > 0 {
			p = live[rand.IntN(len(live))]
			pid = harness.FindShim(p.id)
		}
		if pid == 0 {
			x.mu.Unlock()
			x.gate.Unlock()
			continue
		}
		// Marked first: from the kill on, their containers' output may
		// be cut short.
		var served []*pod
		for _, q := range x.pods {
			if !q.removed && harness.FindShim(q.id) == pid {
				served = append(served, q)
				q.shimKilled = true
				for _, c := range q.ctrs {
					c.shimKilled = true
				}
			}
		}
		x.mu.Unlock()
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			x.t.Fatalf("pidfd of the shim %d of pod %s: %v", pid, p.id, err)
		}
		if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil {
			x.t.Fatalf("kill the shim %d of pod %s: %v", pid, p.id, err)
		}
		// Checked at once (the caller holds the workers next): a worker
		// that meets the dead shim tears its pod down, and the state the
		// daemon reports before then is what a kubelet acts on. The kill
		// is over once the process has exited (its pidfd polls readable),
		// when all its sockets are closed: the kernel closes them one by
		// one as the process exits.
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for n, _ := unix.Poll(fds, -1); n != 1; n, _ = unix.Poll(fds, -1) {
		}
		unix.Close(pidfd)
		x.gate.Unlock()
		x.shimKills.Add(1)
		x.shimKilledPods.Add(int64(len(served)))
		return fmt.Sprintf("shim kill %d (pod %s and %d more it served)", x.shimKills.Load(), p.id, len(served)-1)
	}
	x.t.Fatal("no running pod to kill the shim of within 20 s")
	return ""
}

// killAnInit has the next worker's StartContainer meet the test killing
// its container's init.
func (x *chaos) killAnInit() string {
	before := x.initKills.Load()
	x.killInit.Store(true)
	for deadline := time.Now().Add(30 * time.Second); x.killInit.Load(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			x.t.Fatal("no worker started a container within 30 s")
		}
	}
	time.Sleep(300 * time.Millisecond)
	if x.initKills.Load() == before {
		return "an init kill that came too late"
	}
	return fmt.Sprintf("init kill %d", x.initKills.Load())
}

// killInitOf kills every process in the cgroup of the container id (the
// pod's parent given) as soon as one appears: its init, waiting to exec
// or just past it. stop ends the watch and reports whether a kill landed.
func (x *chaos) killInitOf(parent, id string) (stop func() bool) {
	done, finished := make(chan struct{}), make(chan struct{})
	var landed atomic.Bool
	go func() {
		defer close(finished)
		for !landed.Load() {
			select {
			case <-done:
				return
			default:
			}
			for _, pid := range x.procsIn(parent + "/" + id) {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					landed.Store(true)
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	return func() bool {
		close(done)
		<-finished
		return landed.Load()
	}
}

// pullOnFullDisk fills the root's filesystem while the workers go on,
// pulls the big image, which must fail, and checks that the store is
// whole and lists nothing of it; then frees the space.
func (x *chaos) pullOnFullDisk() string {
	t := x.t
	ctx := context.Background()
	ref := &criapi.ImageSpec{Image: x.images["big"]}
	// A pull that a daemon kill met may have finished.
	if err := x.clients().Images.RemoveImage(ctx, ref); err != nil {
		t.Fatalf("remove %s before the pull on a full disk: %v", ref.Image, err)
	}
	filler := filepath.Join(x.e.Root, "faults-filler")
	n, err := harness.Fill(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filler)
	if _, err := x.clients().Images.PullImage(ctx, ref, nil, nil); err == nil {
		t.Errorf("pull of %s with the disk full (%d bytes of filler) succeeded", ref.Image, n)
	} else {
		t.Logf("pull on a full disk: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // the workers meet the full disk too
	x.gate.Lock()
	defer x.gate.Unlock()
	if st, err := x.clients().Images.ImageStatus(ctx, ref, false); err != nil || st.GetImage() != nil {
		t.Errorf("after a pull that failed on a full disk, ImageStatus = %v, %v", st.GetImage(), err)
	}
	harness.CheckImageStore(t, x.e.Root)
	free(t, filler)
	x.pullsOnFullDisk.Add(1)
	return fmt.Sprintf("pull on a full disk %d", x.pullsOnFullDisk.Load())
}

// free removes a filler and commits the removal: ext4 reuses the blocks
// of a deleted file only once its journal has committed the delete.
func free(t *testing.T, filler string) {
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	syscall.Sync()
}

// ticker logs long numbered lines until stopped: long, so that the write
// which meets the full disk most likely spans a page and is cut short.
const ticker = `trap "exit 3" TERM; pad=$(head -c 3000 /dev/zero | tr '\0' x); i=0; while :; do echo "tick $i $pad"; i=$((i+1)); sleep 0.02; done`

// logOnFullDisk fills the log filesystem while the workers' containers
// and a ticker of the controller's write their logs. The ticker must go
// on running and answer execs while its log cannot grow, and, once the
// space is freed, log again, with every line of its log well formed.
func (x *chaos) logOnFullDisk() string {
	t := x.t
	w := &worker{x: x, n: -1, probe: true}
	p := x.newPod(-1)
	if w.runPod(p) != nil {
		t.FailNow()
	}
	c, err := w.createCtr(p, "ticker", "busybox")
	if err != nil {
		t.FailNow()
	}
	if w.startCtr(c) != nil {
		t.FailNow()
	}
	x.waitLog(c, func(n int) bool { return n >= 5 }, "the ticker's first lines")
	filler := filepath.Join(x.logDir, "faults-filler")
	x.mu.Lock()
	x.logsFull = true
	for _, p := range x.pods {
		for _, c := range p.ctrs {
			c.diskFull = true
		}
	}
	x.mu.Unlock()
	if _, err := harness.Fill(filler); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if w.execSync(c) != nil {
		t.Errorf("exec in a container whose log's disk is full failed")
	}
	st, err := x.clients().Runtime.ContainerStatus(context.Background(), c.id, false)
	if err != nil || st.Status.State != criapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("a container whose log's disk is full: %v, %v; want it running", st.GetStatus(), err)
	}
	lines, _ := readLog(c.logPath, c.kind)
	free(t, filler)
	x.mu.Lock()
	x.logsFull = false
	x.mu.Unlock()
	full := len(lines)
	x.waitLog(c, func(n int) bool { return n > full+5 }, "the ticker to log again once the disk has space")
	if _, err := readLog(c.logPath, c.kind); err != nil {
		t.Errorf("the log of a container that wrote through a full disk: %v", err)
	}
	_ = w.teardown(p)
	x.logsOnFullDisk.Add(1)
	return fmt.Sprintf("log writes on a full disk %d", x.logsOnFullDisk.Load())
}

// waitLog waits until the number of well-formed lines of c's log
// satisfies ok (a malformed log counts as none).
func (x *chaos) waitLog(c *ctr, ok func(n int) bool, what string) {
	x.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		lines, err := readLog(c.logPath, c.kind)
		if err == nil && ok(len(lines)) {
			return
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("timed out waiting for %s (%d lines, %v)", what, len(lines), err)
		}
	}
}
