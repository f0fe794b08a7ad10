package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// rdtClasses is the class file of the fake resctrl tests: two classes of
// one partition, on the fake host's L3 of 11 ways.
const rdtClasses = `partitions:
  all:
    l3Allocation: "100%"
    classes:
      gold:
        l3Allocation: "60%"
      bronze:
        l3Allocation: "20%"
`

// fakeResctrl is a resctrl tree for a daemon: a plain directory shaped as
// the kernel's (an L3 of 11 ways on two cache domains, no monitoring), the
// class file, and a copy of this host's mountinfo with a resctrl line
// naming the directory, for the daemon's -mountinfo. A plain directory
// makes no files on mkdir as resctrl does: the classes' groups are made
// beforehand with theirs.
type fakeResctrl struct {
	root, mountinfo, classFile string
}

func newFakeResctrl(t *testing.T, classes ...string) *fakeResctrl {
	t.Helper()
	dir := t.TempDir()
	f := &fakeResctrl{root: filepath.Join(dir, "resctrl"), mountinfo: filepath.Join(dir, "mountinfo"), classFile: filepath.Join(dir, "rdt.yaml")}
	files := map[string]string{
		"info/last_cmd_status": "ok\n", "info/L3/cbm_mask": "7ff\n", "info/L3/min_cbm_bits": "1\n",
		"info/L3/num_closids": "16\n", "info/L3/shareable_bits": "0\n",
		"schemata": "L3:0=7ff;1=7ff\n", "tasks": "",
	}
	for _, c := range classes {
		files["crib-"+c+"/schemata"], files["crib-"+c+"/tasks"] = "L3:0=7ff;1=7ff\n", ""
	}
	for name, content := range files {
		p := filepath.Join(f.root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	host, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("9999 1 0:9999 / %s rw,relatime shared:9999 - resctrl resctrl rw\n", f.root)
	if err := os.WriteFile(f.mountinfo, append(host, line...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.classFile, []byte(rdtClasses), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// configure points env's daemon at the tree.
func (f *fakeResctrl) configure(e *harness.Env, extra string) {
	e.Args = append(e.Args, "-mountinfo", f.mountinfo)
	e.WriteConfig(fmt.Sprintf("\n[rdt]\nconfig_file = %q\n%s", f.classFile, extra))
}

// tasks is the pid the shim last wrote into class's group (a plain file:
// each write lands at its start).
func (f *fakeResctrl) tasks(t *testing.T, class string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.root, "crib-"+class, "tasks"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// A container asking for a class by annotation is placed in its group
// before it runs, and its status says so; the class's schemata is the
// class file's.
func TestRDTClassOnFakeResctrl(t *testing.T) {
	rc := newFakeResctrl(t, "gold", "bronze")
	w := newPodWorldWith(t, func(e *harness.Env) { rc.configure(e, "") })
	pod, podID := w.runPod(t, "rdt", criapi.NamespaceMode_CONTAINER)
	id := w.startSleeper(t, podID, pod, "gold", &criapi.ContainerConfig{
		Annotations: map[string]string{"io.kubernetes.cri.rdt-class": "gold"}})
	pid := containerPid(t, w, id)
	if got := rc.tasks(t, "gold"); got != strconv.Itoa(pid) {
		t.Errorf("crib-gold/tasks holds %q, want the container's pid %d", got, pid)
	}
	schemata, _ := os.ReadFile(filepath.Join(rc.root, "crib-gold", "schemata"))
	if !strings.Contains(string(schemata), "L3:0=") {
		t.Errorf("crib-gold/schemata %q: not written from the class file", schemata)
	}
	cs, err := w.c.Runtime.ContainerStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := verboseInfo(t, cs.GetInfo())["rdtClass"]; got != "gold" {
		t.Errorf("verbose rdtClass %v, want gold", got)
	}
}

// containerPid is the host pid of a running container's process.
func containerPid(t *testing.T, w *podWorld, id string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err := w.c.Runtime.ContainerStatus(context.Background(), id, true)
		if err != nil {
			t.Fatal(err)
		}
		if pid, ok := verboseInfo(t, cs.GetInfo())["pid"].(float64); ok && pid > 0 {
			return int(pid)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in container %s's verbose status: %v", id, cs.GetInfo())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNRIRDTClassPlugin: crib's example NRI plugin (cmd/nri-rdt-class),
// installed in the daemon's plugin directory with its policy in the plugin
// config directory, is started by crib and puts each new container in the
// class its policy gives the pod's namespace, on the fake resctrl tree:
// gold for one namespace, the default (bronze) for another, and a pod's
// own class request wins.
func TestNRIRDTClassPlugin(t *testing.T) {
	rc := newFakeResctrl(t, "gold", "bronze")
	w := newPodWorldWith(t, func(e *harness.Env) {
		bin := filepath.Join(e.NRIPlugins, "10-rdt-class")
		if out, err := exec.Command("go", "build", "-tags", "nri_no_wasm", "-o", bin, "github.com/crib-runtime/crib/cmd/nri-rdt-class").CombinedOutput(); err != nil {
			t.Fatalf("build the plugin: %v\n%s", err, out)
		}
		policy := "rules:\n- namespace: tenant-gold\n  class: gold\ndefault: bronze\n"
		if err := os.WriteFile(filepath.Join(e.NRIConf, "10-rdt-class.conf"), []byte(policy), 0o644); err != nil {
			t.Fatal(err)
		}
		rc.configure(e, "")
	})
	waitForLog(t, w.d, `10-rdt-class\" synchronization success`)
	start := func(namespace, name string, annotations map[string]string) (string, int) {
		pod := w.podConfig(name, criapi.NamespaceMode_CONTAINER)
		pod.Metadata.Namespace = namespace
		podID := w.run(t, pod)
		id := w.startSleeper(t, podID, pod, name, &criapi.ContainerConfig{Annotations: annotations})
		return id, containerPid(t, w, id)
	}
	for _, tc := range []struct {
		namespace, name string
		annotations     map[string]string
		class           string
	}{
		{"tenant-gold", "by-namespace", nil, "gold"},
		{"tenant-other", "by-default", nil, "bronze"},
		{"tenant-other", "asked-itself", map[string]string{"io.kubernetes.cri.rdt-class": "gold"}, "gold"},
	} {
		id, pid := start(tc.namespace, tc.name, tc.annotations)
		if got := rc.tasks(t, tc.class); got != strconv.Itoa(pid) {
			t.Errorf("%s: crib-%s/tasks holds %q, want the container's pid %d", tc.name, tc.class, got, pid)
		}
		cs, err := w.c.Runtime.ContainerStatus(context.Background(), id, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := verboseInfo(t, cs.GetInfo())["rdtClass"]; got != tc.class {
			t.Errorf("%s: verbose rdtClass %v, want %s", tc.name, got, tc.class)
		}
	}
}
