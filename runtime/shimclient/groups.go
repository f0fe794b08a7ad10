package shimclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// groupPrefix starts the name of a shim process's directory under the
// shims' directory; pods' directories are 16 hex digits.
const groupPrefix = "grp-"

// group is a shim process as the daemon counts it: the pods it serves or
// is about to.
type group struct {
	dir  string
	pods int
	// ready is closed once the process was spawned (err says how).
	ready chan struct{}
	err   error
}

// groups hands pods to shim processes, at most perShim to each. The daemon
// is the only one that hands a process pods and the only one that tells
// it to exit, so its counts are the processes': a process whose count
// reaches 0 leaves the list before it is told to exit, and is never handed
// a pod again.
type groups struct {
	binary, dir string
	args        []string // more flags for every shim process
	perShim     int
	obs         Observer

	mu      sync.Mutex
	counted bool     // the processes found on disk are counted (a restart)
	list    []*group // processes that may take pods
	of      map[string]*group
}

// reserve returns a process with room for one more pod, counted: one
// already running, or one it spawns (which later callers may share while it
// starts; spawned says it was this call's).
func (gs *groups) reserve(ctx context.Context) (g *group, spawned bool, err error) {
	gs.mu.Lock()
	gs.countLocked(ctx)
	for _, g := range gs.list {
		if g.pods < gs.perShim {
			g.pods++
			gs.mu.Unlock()
			return g, false, gs.wait(ctx, g)
		}
	}
	g = &group{dir: filepath.Join(gs.dir, groupPrefix+randomHex()), pods: 1, ready: make(chan struct{})}
	gs.list = append(gs.list, g)
	gs.mu.Unlock()
	g.err = Spawn(ctx, gs.binary, g.dir, gs.args...)
	close(g.ready)
	if g.err == nil {
		gs.obs.ShimStarted()
	}
	return g, true, g.err
}

// wait returns once g's process was spawned, with the spawn's error.
func (gs *groups) wait(ctx context.Context, g *group) error {
	select {
	case <-g.ready:
		return g.err
	case <-ctx.Done():
		return fmt.Errorf("wait for a shim to start: %w", ctx.Err())
	}
}

// serve hands pod id, whose shim directory is dir, to a process: the pod
// is then served on dir's socket. A process found gone or exiting is
// dropped and another one tried.
func (gs *groups) serve(ctx context.Context, id, dir string) error {
	for {
		g, spawned, err := gs.reserve(ctx)
		if err == nil {
			err = serveOn(ctx, g.dir, id, dir)
		}
		if err == nil {
			gs.mu.Lock()
			gs.of[id] = g
			gs.mu.Unlock()
			return nil
		}
		retry := !spawned && ctx.Err() == nil && (errors.Is(err, errdefs.ErrNotFound) ||
			errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, errdefs.ErrFailedPrecondition))
		if retry || spawned {
			// Gone, wedged or exiting, or never started: no pod goes
			// there again, and it ends with its last pod. A new process
			// is tried once more.
			gs.drop(g)
		}
		gs.unreserve(ctx, g)
		if !retry {
			return fmt.Errorf("shim of pod %s: %w", id, err)
		}
	}
}

// serveOn asks the process on groupDir to serve pod id from dir.
func serveOn(ctx context.Context, groupDir, id, dir string) error {
	c, err := shimapi.DialGroup(ctx, filepath.Join(groupDir, shimapi.GroupSocketName))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Serve(ctx, &shimapi.ServeRequest{PodId: id, Dir: dir})
	return err
}

// unreserve gives back a reservation that found no pod served; a process
// left with no pod may be ended (departLocked).
func (gs *groups) unreserve(ctx context.Context, g *group) {
	gs.mu.Lock()
	end := gs.departLocked(g)
	gs.mu.Unlock()
	if end {
		_ = gs.exit(ctx, g)
	}
}

// departLocked counts one pod less on g and says whether g is to be ended:
// it serves none, and it is not the one process kept for the next pod. A
// node keeps at most one process that serves no pod, so that a pod started
// on an otherwise empty node (or one whose processes are full) does not
// wait for a process to start, nor one removed for one to exit: the
// kubelet's pod churn on a quiet node. A process that is off the list
// (gone, or failing) is always ended.
func (gs *groups) departLocked(g *group) bool {
	g.pods--
	if g.pods > 0 {
		return false
	}
	listed, spare := false, true
	for _, x := range gs.list {
		if x == g {
			listed = true
		} else if x.pods < gs.perShim {
			spare = false // another process has room for the next pod
		}
	}
	if listed && spare {
		return false
	}
	gs.dropLocked(g)
	return true
}

// leave forgets pod id (shut down) and ends its process if it was the
// process's last pod.
func (gs *groups) leave(ctx context.Context, id string) error {
	gs.mu.Lock()
	gs.countLocked(ctx)
	g := gs.of[id]
	delete(gs.of, id)
	if g == nil {
		gs.mu.Unlock()
		return nil // served by a shim of its own from before groups, or never
	}
	end := gs.departLocked(g)
	gs.mu.Unlock()
	if end {
		return gs.exit(ctx, g)
	}
	return nil
}

// exit ends g's process, which serves no pod, and removes its directory.
// A process that still serves pods (one the daemon lost count of) is
// counted again instead.
func (gs *groups) exit(ctx context.Context, g *group) error {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	c, err := shimapi.DialGroup(ctx, filepath.Join(g.dir, shimapi.GroupSocketName))
	if err == nil {
		_, err = c.Exit(ctx, &shimapi.Empty{})
		_ = c.Close()
	}
	switch {
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		gs.mu.Lock()
		gs.adoptLocked(ctx, g.dir)
		gs.mu.Unlock()
		return nil
	case err != nil && !errors.Is(err, shimapi.ErrShimGone):
		return fmt.Errorf("end shim %s: %w", g.dir, err)
	}
	if err := os.RemoveAll(g.dir); err != nil {
		return fmt.Errorf("remove shim directory: %w", err)
	}
	return nil
}

// drop takes g off the list: no pod is handed to it again.
func (gs *groups) drop(g *group) {
	gs.mu.Lock()
	gs.dropLocked(g)
	gs.mu.Unlock()
}

func (gs *groups) dropLocked(g *group) {
	gs.list = slices.DeleteFunc(gs.list, func(x *group) bool { return x == g })
}

// countLocked counts, once, the processes a previous daemon started: each
// one's pods are asked for. A process that is gone leaves its directory
// behind, which goes.
func (gs *groups) countLocked(ctx context.Context) {
	if gs.counted {
		return
	}
	gs.counted = true
	entries, err := os.ReadDir(gs.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), groupPrefix) {
			gs.adoptLocked(ctx, filepath.Join(gs.dir, e.Name()))
		}
	}
}

// adoptLocked counts the process on dir and the pods it serves.
func (gs *groups) adoptLocked(ctx context.Context, dir string) {
	logger := klog.FromContext(ctx)
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	c, err := shimapi.DialGroup(ctx, filepath.Join(dir, shimapi.GroupSocketName))
	if errors.Is(err, shimapi.ErrShimGone) {
		_ = os.RemoveAll(dir)
		return
	}
	if err != nil {
		logger.Error(err, "Shim not counted: no pod goes there", "dir", dir)
		return
	}
	defer c.Close()
	resp, err := c.Pods(ctx, &shimapi.Empty{})
	if err != nil {
		logger.Error(err, "Shim not counted: no pod goes there", "dir", dir)
		return
	}
	ready := make(chan struct{})
	close(ready)
	g := &group{dir: dir, pods: len(resp.PodIds), ready: ready}
	for _, id := range resp.PodIds {
		gs.of[id] = g
	}
	gs.list = append(gs.list, g)
}

// cleanupContext bounds the calls that keep the counts true (counting a
// process, ending one) by their own time, not by the RPC that led to them:
// a RunPodSandbox past its deadline still gives back what it reserved.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
