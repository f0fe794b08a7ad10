package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// check compares what the daemon lists with what the clients were told,
// with no call in flight: every pod and container whose creation
// succeeded and whose removal was never asked for is listed, nothing is
// listed that no client asked for or whose removal succeeded, and each is
// in its real state (checkPod, checkCtr). A creation or removal that
// failed during a fault may have happened or not; what is listed of it
// is taken into the ledger.
func (x *chaos) check(what string) {
	t := x.t
	t.Helper()
	x.checks.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt := x.clients().Runtime
	pods, err := rt.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatalf("%s: ListPodSandbox: %v", what, err)
	}
	ctrs, err := rt.ListContainers(ctx, nil)
	if err != nil {
		t.Fatalf("%s: ListContainers: %v", what, err)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	byID := map[string]*pod{}
	for _, p := range x.pods {
		if p.id != "" {
			byID[p.id] = p
		}
	}
	listed := map[string]*criapi.PodSandbox{}
	for _, lp := range pods {
		listed[lp.Id] = lp
		p := byID[lp.Id]
		if p == nil {
			p = x.pods[lp.GetMetadata().GetUid()]
			if p == nil || p.id != "" {
				t.Errorf("%s: pod %s (%v) is listed, but no client asked for it", what, lp.Id, lp.Metadata)
				continue
			}
			p.id, byID[lp.Id] = lp.Id, p // a RunPodSandbox that failed, but happened
		}
		if p.removed {
			t.Errorf("%s: pod %s is listed after its RemovePodSandbox succeeded", what, p.id)
		}
	}
	listedCtrs := map[string]*criapi.Container{}
	for _, lc := range ctrs {
		listedCtrs[lc.Id] = lc
		var c *ctr
		if p := byID[lc.PodSandboxId]; p != nil {
			c = p.ctr(lc.GetMetadata().GetName())
		}
		if c == nil || (c.id != "" && c.id != lc.Id) {
			t.Errorf("%s: container %s (%v) of pod %s is listed, but no client asked for it", what, lc.Id, lc.Metadata, lc.PodSandboxId)
			continue
		}
		c.id = lc.Id // a CreateContainer that failed, but happened
		if c.removed {
			t.Errorf("%s: container %s is listed after its removal succeeded", what, c.id)
		}
	}
	for _, p := range x.pods {
		lp := listed[p.id]
		if lp == nil {
			if p.ran && !p.removeAsked {
				t.Errorf("%s: pod %s is lost: RunPodSandbox succeeded, no removal was asked for, and it is not listed", what, p.id)
			}
			continue
		}
		x.checkPod(what, p, lp)
		for _, c := range p.ctrs {
			if listedCtrs[c.id] != nil {
				x.checkCtr(ctx, what, p, c)
			} else if c.created && !c.removeAsked {
				t.Errorf("%s: container %s is lost: CreateContainer succeeded, no removal was asked for, and it is not listed", what, c.id)
			}
		}
	}
}

// ctr finds a pod's container by name. Preconditions: x.mu held.
func (p *pod) ctr(name string) *ctr {
	for _, c := range p.ctrs {
		if c.name == name {
			return c
		}
	}
	return nil
}

// checkPod checks a listed pod's state: one that nobody stopped is
// ready, and a ready pod has its shim, without which none of its
// containers can start. Preconditions: x.mu held.
func (x *chaos) checkPod(what string, p *pod, lp *criapi.PodSandbox) {
	x.podsChecked.Add(1)
	switch lp.State {
	case criapi.PodSandboxState_SANDBOX_NOTREADY:
		if p.ran && !p.stopAsked && !p.shimKilled {
			x.t.Errorf("%s: pod %s is NotReady, but RunPodSandbox succeeded and nobody stopped it", what, p.id)
		}
	case criapi.PodSandboxState_SANDBOX_READY:
		if harness.FindShim(p.id) == 0 {
			x.t.Errorf("%s: pod %s is Ready, but its shim is gone (shim killed: %v)", what, p.id, p.shimKilled)
		}
	}
}

// checkCtr checks a listed container's state against the processes the
// kernel has: a running one's init runs, in the container's cgroup; an
// exited one's exit code is one it really had (or is marked unknown) and
// nothing of it runs any more; a created one was never started. Its log
// is well formed, and a printer that ended by itself logged every line.
// Preconditions: x.mu held.
func (x *chaos) checkCtr(ctx context.Context, what string, p *pod, c *ctr) {
	t := x.t
	x.ctrsChecked.Add(1)
	x.checkedIDs.Store(c.id, true)
	rt := x.clients().Runtime
	st, err := rt.ContainerStatus(ctx, c.id, true)
	if err != nil {
		t.Errorf("%s: status of container %s: %v", what, c.id, err)
		return
	}
	cg := p.cfg.Linux.CgroupParent + "/" + c.id
	if st.Status.State == criapi.ContainerState_CONTAINER_RUNNING {
		pid := infoPid(st.Info)
		if x.runsIn(pid, c.id) {
			return
		}
		// It exits: the shim records the exit once the output has
		// drained, which takes up to 2 s (runtime/shim drainTimeout).
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if st, err = rt.ContainerStatus(ctx, c.id, true); err != nil {
				t.Errorf("%s: status of container %s: %v", what, c.id, err)
				return
			}
			if st.Status.State != criapi.ContainerState_CONTAINER_RUNNING {
				break
			}
			if time.Now().After(deadline) {
				stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
				cgs, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
				t.Errorf("%s: container %s is reported running as pid %d, which does not run in its cgroup (stat %q, cgroups %q, cgroup's processes %v)",
					what, c.id, pid, stat, cgs, x.procsIn(cg))
				return
			}
		}
	}
	s := st.Status
	switch s.State {
	case criapi.ContainerState_CONTAINER_CREATED:
		if c.started {
			t.Errorf("%s: container %s is reported created after its StartContainer succeeded", what, c.id)
		}
	case criapi.ContainerState_CONTAINER_EXITED:
		if s.Reason == "Unknown" {
			x.unknownExits.Add(1)
		} else if !c.allowedCodes()[s.ExitCode] {
			t.Errorf("%s: container %s (%s) exited %d (%s: %s), not a code it can have had (%v)", what, c.id, c.kind, s.ExitCode, s.Reason, s.Message, c.allowedCodes())
		} else {
			x.exitCodes.Add(1)
		}
		if left := x.settledProcs(cg); len(left) > 0 {
			t.Errorf("%s: container %s is reported exited (%d, %s), but processes %v still run in its cgroup", what, c.id, s.ExitCode, s.Reason, left)
		}
		if c.kind == "printer" && s.ExitCode == 7 && s.Reason != "Unknown" && !c.diskFull && !c.shimKilled {
			x.checkLog(what, c, printerLines)
			return
		}
	default:
		t.Errorf("%s: container %s is in state %v (%s)", what, c.id, s.State, s.Message)
	}
	x.checkLog(what, c, 0)
}

// infoPid reads the pid of a verbose ContainerStatus's info (0 if none).
func infoPid(info map[string]string) int {
	var v struct{ Pid int }
	_ = json.Unmarshal([]byte(info["info"]), &v)
	return v.Pid
}

// runsIn reports whether pid is a live process in the cgroup of the
// container id.
func (x *chaos) runsIn(pid int, id string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || strings.Contains(string(stat[strings.LastIndexByte(string(stat), ')'):]), ") Z ") {
		return false
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && strings.Contains(string(cg), "/"+id+"\n")
}

// procsIn lists the processes in a cgroup (none if it is gone).
func (x *chaos) procsIn(cg string) []int {
	b, _ := os.ReadFile(filepath.Join(x.procs, cg, "cgroup.procs"))
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// settledProcs is what still runs in cg after a moment: the shim kills
// what a container's init left only after it has recorded the exit.
func (x *chaos) settledProcs(cg string) []int {
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := x.procsIn(cg)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLog checks that every line of a container's log is in the CRI
// format, and, when want > 0, that it holds "line 0" to "line want-1" in
// order. A log that was never opened is fine.
func (x *chaos) checkLog(what string, c *ctr, want int) {
	lines, err := readLog(c.logPath, c.kind)
	if os.IsNotExist(err) && want == 0 {
		return
	}
	if err != nil {
		x.t.Errorf("%s: log of container %s: %v", what, c.id, err)
		return
	}
	if want == 0 {
		return
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.content)
	}
	var exp []string
	for i := range want {
		exp = append(exp, fmt.Sprintf("line %d", i))
	}
	if strings.Join(got, "\n") != strings.Join(exp, "\n") {
		x.t.Errorf("%s: container %s exited 7 after logging %d lines, its log holds %d: %q", what, c.id, want, len(got), got)
	}
}

// logLine is one line of a CRI log file.
type logLine struct{ stream, tag, content string }

// readLog reads a CRI log file, failing on the first line that is not
// "<RFC3339Nano> <stdout|stderr> <F|P> <content>", or whose content is not
// a whole line of what a container of kind prints (a line cut short and
// continued by the next one), or a file that does not end with a newline.
func readLog(path, kind string) ([]logLine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%s ends in the middle of a line: %q", path, tail(string(b)))
	}
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) < 4 {
			f = append(f, "") // an empty line's content
		}
		_, terr := time.Parse(time.RFC3339Nano, f[0])
		if len(f) != 4 || terr != nil || (f[1] != "stdout" && f[1] != "stderr") || (f[2] != "F" && f[2] != "P") {
			return nil, fmt.Errorf("%s line %d is not a CRI log line: %q", path, n, tail(sc.Text()))
		}
		if !printed(kind, f[3]) {
			return nil, fmt.Errorf("%s line %d is not a line a %s prints: %q", path, n, kind, tail(f[3]))
		}
		out = append(out, logLine{f[1], f[2], f[3]})
	}
	return out, sc.Err()
}

// printed reports whether content is a whole line of what a container of
// kind prints: "line N" (printer), "tick N " and 3000 x's (ticker).
func printed(kind, content string) bool {
	switch kind {
	case "printer":
		n, ok := strings.CutPrefix(content, "line ")
		return ok && digits(n)
	case "ticker":
		rest, ok := strings.CutPrefix(content, "tick ")
		n, pad, _ := strings.Cut(rest, " ")
		return ok && digits(n) && pad == strings.Repeat("x", 3000)
	}
	return true
}

func digits(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// tail shortens s for a message.
func tail(s string) string {
	if len(s) > 200 {
		return s[:100] + "…" + s[len(s)-100:]
	}
	return s
}

// checkImages checks that ListImages and ImageStatus agree and that the
// store on disk is whole. With final, busybox is also removed and pulled
// again, and a pod is run from it.
func (x *chaos) checkImages(final bool) {
	t := x.t
	t.Helper()
	ctx := context.Background()
	img := x.clients().Images
	list, err := img.ListImages(ctx, nil)
	if err != nil {
		t.Errorf("ListImages: %v", err)
		return
	}
	for _, i := range list {
		st, err := img.ImageStatus(ctx, &criapi.ImageSpec{Image: i.Id}, false)
		if err != nil || st.GetImage().GetId() != i.Id || st.GetImage().GetSize() != i.GetSize() {
			t.Errorf("ImageStatus of listed image %s (%d bytes) = %v, %v", i.Id, i.GetSize(), st.GetImage(), err)
		}
	}
	for _, name := range []string{"busybox", "big"} {
		st, err := img.ImageStatus(ctx, &criapi.ImageSpec{Image: x.images[name]}, false)
		if err != nil {
			t.Errorf("ImageStatus %s: %v", x.images[name], err)
			continue
		}
		found := false
		for _, i := range list {
			found = found || i.Id == st.GetImage().GetId()
		}
		if (st.GetImage() != nil) != found {
			t.Errorf("ImageStatus of %s is %v, but ListImages has it: %v", x.images[name], st.GetImage(), found)
		}
	}
	harness.CheckImageStore(t, x.e.Root)
	if !final {
		return
	}
	if err := img.RemoveImage(ctx, &criapi.ImageSpec{Image: x.images["busybox"]}); err != nil {
		t.Errorf("remove busybox at the end: %v", err)
	}
	if _, err := img.PullImage(ctx, &criapi.ImageSpec{Image: x.images["busybox"]}, nil, nil); err != nil {
		t.Errorf("pull busybox again at the end: %v", err)
	}
	x.probe(true)
	harness.CheckImageStore(t, x.e.Root)
}
