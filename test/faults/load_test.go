package faults

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// What each kind of container runs. Every exit code is one the test can
// tell apart: 7 when a printer ends by itself, 3 when the trap of SIGTERM
// (a Stop) ran, 128+signal when a signal killed it before the trap was
// set (143) or SIGKILL did (137).
const (
	printerLines = 40
	// printer writes printerLines numbered lines to its log, then exits 7.
	printer = `trap "exit 3" TERM; i=0; while [ $i -lt 40 ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done; exit 7`
	// sleeper runs until stopped; ExecSync runs in it.
	sleeper = `trap "exit 3" TERM; while :; do sleep 0.2; done`
)

// ctr is what the clients were told of one container. Fields are guarded
// by the ledger's mu.
type ctr struct {
	name, kind string
	id         string // "" until CreateContainer returned it (or the check found it)
	parent     string // its pod's cgroup parent
	logPath    string
	created    bool // CreateContainer returned OK: listed until removed
	started    bool // StartContainer returned OK: never CREATED again
	stopAsked  bool // a Stop of it or its pod was sent: 3, 137 and 143 are real codes
	initKilled bool // the test killed its init during StartContainer: 137 is real
	shimKilled bool // its pod's shim was killed: its output may be cut short
	diskFull   bool // it ran while its log's disk was full: lines may be lost
	// removeAsked: a RemoveContainer (or the pod's removal) was sent; one
	// that failed during a fault may have happened.
	removeAsked bool
	removed     bool // RemoveContainer (or the pod's removal) returned OK
}

// pod is what the clients were told of one pod.
type pod struct {
	uid         string
	worker      int
	cfg         *criapi.PodSandboxConfig
	id          string // "" until RunPodSandbox returned it (or the check found it)
	ran         bool   // RunPodSandbox returned OK: listed until removed
	stopAsked   bool
	shimKilled  bool
	removeAsked bool // a RemovePodSandbox was sent
	removed     bool
	ctrs        []*ctr
}

// allowedCodes are the exit codes a container may really have exited
// with, given what was done to it.
func (c *ctr) allowedCodes() map[int32]bool {
	ok := map[int32]bool{}
	if c.kind == "printer" {
		ok[7] = true
	}
	if c.stopAsked {
		ok[3], ok[137], ok[143] = true, true, true
	}
	if c.initKilled {
		ok[137] = true
	}
	return ok
}

// worker runs pod lifecycles against the daemon, as a kubelet would: each
// pod gets a printer and a sleeper, execs into the sleeper, then has its
// containers and itself stopped and removed. Errors are expected while a
// fault is active: an operation that failed may or may not have happened,
// and the pod is torn down later (left).
type worker struct {
	x    *chaos
	n    int
	rng  *rand.Rand
	left []*pod // pods whose teardown has not succeeded yet
	// probe is the controller's own worker: it runs while the gate is
	// held, and every error it meets is one.
	probe bool
}

// op runs one call against the current daemon while the gate is open,
// updating the ledger under the same hold: when the controller holds the
// gate, no call is in flight and the ledger says what the clients were
// told.
func (w *worker) op(name string, call func(c harness.Clients) error) error {
	if !w.probe {
		w.x.gate.RLock()
		defer w.x.gate.RUnlock()
	}
	c := w.x.clients()
	err := call(c)
	if err != nil && w.probe {
		w.x.t.Errorf("probe: %s: %v", name, err)
	} else if err != nil {
		w.x.rpcErrors.Add(1)
		w.x.t.Logf("worker %d: %s: %v", w.n, name, err)
	}
	return err
}

// run loops until ctx ends.
func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		w.retryLeft()
		if len(w.left) >= 3 { // a daemon that is down: do not pile up pods
			time.Sleep(100 * time.Millisecond)
			continue
		}
		p := w.x.newPod(w.n)
		if err := w.lifecycle(ctx, p); err != nil {
			w.left = append(w.left, p)
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// retryLeft tears down the pods an earlier fault interrupted.
func (w *worker) retryLeft() {
	var still []*pod
	for _, p := range w.left {
		if err := w.teardown(p); err != nil {
			still = append(still, p)
		}
	}
	w.left = still
}

// lifecycle runs one pod through its life; the first error ends it.
func (w *worker) lifecycle(ctx context.Context, p *pod) error {
	if err := w.runPod(p); err != nil {
		return err
	}
	for _, kind := range []string{"printer", "sleeper"} {
		c, err := w.createCtr(p, kind, "busybox")
		if err != nil {
			return err
		}
		if err := w.startCtr(c); err != nil {
			return err
		}
	}
	for i := 0; i < 1+w.rng.IntN(3); i++ {
		if err := w.execSync(p.ctrs[1]); err != nil {
			return err
		}
	}
	// Live a while, so that faults find pods in every state.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(w.rng.IntN(2500)) * time.Millisecond):
	}
	return w.teardown(p)
}

// newPod makes a pod's config, known to the ledger by its uid before it
// is asked for.
func (x *chaos) newPod(n int) *pod {
	uid := fmt.Sprintf("%x", rand.Int64())
	pidMode := criapi.NamespaceMode_CONTAINER
	if rand.IntN(2) == 0 {
		pidMode = criapi.NamespaceMode_POD
	}
	p := &pod{uid: uid, worker: n, cfg: &criapi.PodSandboxConfig{
		Metadata:     &criapi.PodSandboxMetadata{Name: fmt.Sprintf("w%d", n), Namespace: "faults", Uid: uid},
		Hostname:     "faults",
		LogDirectory: filepath.Join(x.logDir, uid),
		Labels:       map[string]string{"faults-uid": uid},
		DnsConfig:    &criapi.DNSConfig{Servers: []string{"10.96.0.10"}},
		Linux: &criapi.LinuxPodSandboxConfig{
			CgroupParent: x.cgroup + "/pod" + uid,
			SecurityContext: &criapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &criapi.NamespaceOption{Pid: pidMode},
			},
		},
	}}
	x.mu.Lock()
	x.pods[uid] = p
	x.mu.Unlock()
	return p
}

func (w *worker) runPod(p *pod) error {
	// The kubelet makes a pod's cgroup parent before RunPodSandbox and
	// removes it after RemovePodSandbox (kubeletCleanup).
	if err := w.x.cg.Create(p.cfg.Linux.CgroupParent, nil); err != nil {
		w.x.t.Errorf("create the cgroup parent of pod %s: %v", p.uid, err)
		return err
	}
	return w.op("run pod "+p.uid, func(c harness.Clients) error {
		id, err := c.Runtime.RunPodSandbox(context.Background(), p.cfg, "")
		if err == nil {
			w.x.mu.Lock()
			p.id, p.ran = id, true
			w.x.mu.Unlock()
			w.x.podsRun.Add(1)
		}
		return err
	})
}

// createCtr creates a container of kind from image in p.
func (w *worker) createCtr(p *pod, kind, image string) (*ctr, error) {
	c := &ctr{name: fmt.Sprintf("%s-%d", kind, len(p.ctrs)), kind: kind, parent: p.cfg.Linux.CgroupParent}
	c.logPath = filepath.Join(p.cfg.LogDirectory, c.name+".log")
	w.x.mu.Lock()
	p.ctrs = append(p.ctrs, c)
	c.diskFull = w.x.logsFull
	w.x.mu.Unlock()
	script := map[string]string{"printer": printer, "sleeper": sleeper, "ticker": ticker, "data": sleeper}[kind]
	return c, w.op("create "+c.name+" in "+p.id, func(cl harness.Clients) error {
		id, err := cl.Runtime.CreateContainer(context.Background(), p.id, &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: c.name},
			Image:    &criapi.ImageSpec{Image: w.x.images[image]},
			Command:  []string{"sh", "-c", script},
			LogPath:  c.name + ".log",
		}, p.cfg)
		if err == nil {
			w.x.mu.Lock()
			c.id, c.created = id, true
			w.x.mu.Unlock()
			w.x.ctrsCreated.Add(1)
		}
		return err
	})
}

// startCtr starts c; when the controller asked for it, the test kills the
// container's init while StartContainer runs.
func (w *worker) startCtr(c *ctr) error {
	return w.op("start "+c.id, func(cl harness.Clients) error {
		var stop func() bool
		if !w.probe && w.x.killInit.CompareAndSwap(true, false) {
			w.x.mu.Lock()
			c.initKilled = true
			w.x.mu.Unlock()
			stop = w.x.killInitOf(c.parent, c.id)
		}
		err := cl.Runtime.StartContainer(context.Background(), c.id)
		if stop != nil && stop() {
			w.x.initKills.Add(1)
		} else if stop != nil {
			w.x.mu.Lock()
			c.initKilled = false // too late: StartContainer had returned
			w.x.mu.Unlock()
		}
		if err == nil {
			w.x.mu.Lock()
			c.started = true
			w.x.mu.Unlock()
		}
		return err
	})
}

// execSync runs echo in a container and checks what it printed: a call
// that succeeds must have run the command.
func (w *worker) execSync(c *ctr) error {
	return w.op("exec in "+c.id, func(cl harness.Clients) error {
		out, _, err := cl.Runtime.ExecSync(context.Background(), c.id, []string{"echo", "hi"}, 10*time.Second)
		if err == nil {
			w.x.execs.Add(1)
			if string(out) != "hi\n" {
				w.x.t.Errorf("ExecSync in %s succeeded with stdout %q, want \"hi\\n\"", c.id, out)
			}
		}
		return err
	})
}

// teardown stops and removes p's containers, then p, then what the
// kubelet removes itself (the pod's cgroup parent and log directory). A
// pod whose RunPodSandbox failed is looked for by its uid.
func (w *worker) teardown(p *pod) error {
	if p.id == "" {
		var found []*criapi.PodSandbox
		err := w.op("find pod "+p.uid, func(c harness.Clients) error {
			var err error
			found, err = c.Runtime.ListPodSandbox(context.Background(), &criapi.PodSandboxFilter{LabelSelector: map[string]string{"faults-uid": p.uid}})
			if err == nil && len(found) == 1 {
				w.x.mu.Lock()
				p.id = found[0].Id
				w.x.mu.Unlock()
			}
			return err
		})
		if err != nil {
			return err
		}
		if len(found) == 0 { // never made
			return w.x.kubeletCleanup(p)
		}
	}
	for _, c := range p.ctrs {
		if c.id == "" || c.removed {
			continue // one whose create failed goes with the pod
		}
		if err := w.stopRemove(c); err != nil {
			return err
		}
	}
	err := w.op("stop pod "+p.id, func(cl harness.Clients) error {
		w.x.mu.Lock()
		p.stopAsked = true
		for _, c := range p.ctrs {
			c.stopAsked = true
		}
		w.x.mu.Unlock()
		return cl.Runtime.StopPodSandbox(context.Background(), p.id)
	})
	if err != nil {
		return err
	}
	err = w.op("remove pod "+p.id, func(cl harness.Clients) error {
		w.x.mu.Lock()
		p.removeAsked = true
		for _, c := range p.ctrs {
			c.removeAsked = true
		}
		w.x.mu.Unlock()
		err := cl.Runtime.RemovePodSandbox(context.Background(), p.id)
		if err == nil {
			w.x.mu.Lock()
			p.removed = true
			for _, c := range p.ctrs {
				c.removed = true
			}
			w.x.mu.Unlock()
		}
		return err
	})
	if err != nil {
		return err
	}
	return w.x.kubeletCleanup(p)
}

func (w *worker) stopRemove(c *ctr) error {
	err := w.op("stop "+c.id, func(cl harness.Clients) error {
		w.x.mu.Lock()
		c.stopAsked = true
		w.x.mu.Unlock()
		return cl.Runtime.StopContainer(context.Background(), c.id, 5)
	})
	if err != nil {
		return err
	}
	return w.op("remove "+c.id, func(cl harness.Clients) error {
		w.x.mu.Lock()
		c.removeAsked = true
		w.x.mu.Unlock()
		err := cl.Runtime.RemoveContainer(context.Background(), c.id)
		if err == nil {
			w.x.mu.Lock()
			c.removed = true
			w.x.mu.Unlock()
		}
		return err
	})
}

// kubeletCleanup removes what the kubelet owns of a removed pod: its
// cgroup parent (a plain rmdir in each hierarchy, which fails while
// anything is left below it; the inventory then shows what) and its log
// directory.
func (x *chaos) kubeletCleanup(p *pod) error {
	for _, mnt := range harness.CgroupMounts() {
		if err := os.Remove(filepath.Join(mnt.Dir, p.cfg.Linux.CgroupParent)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			x.t.Logf("remove the cgroup parent of pod %s: %v", p.uid, err)
		}
	}
	if err := os.RemoveAll(p.cfg.LogDirectory); err != nil {
		return fmt.Errorf("remove the log directory of pod %s: %w", p.uid, err)
	}
	return nil
}

// counter is a figure for the report.
type counter = atomic.Int64
