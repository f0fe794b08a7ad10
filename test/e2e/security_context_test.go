package e2e

import (
	"strings"
	"testing"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestReadonlyRootfsAndPaths: readonly_rootfs makes "/" read-only, the
// default masked paths hide what they mask, and a container's own
// masked_paths and readonly_paths replace the defaults; a privileged
// container has none of them and a writable sysfs.
func TestReadonlyRootfsAndPaths(t *testing.T) {
	w := newPodWorld(t)
	pod := w.podConfig("paths", criapi.NamespaceMode_CONTAINER)
	pod.Linux.SecurityContext.Privileged = true
	podID := w.run(t, pod)
	start := func(name string, sc *criapi.LinuxContainerSecurityContext) string {
		t.Helper()
		return w.startSleeper(t, podID, pod, name, &criapi.ContainerConfig{Linux: &criapi.LinuxContainerConfig{SecurityContext: sc}})
	}
	ro := start("ro", &criapi.LinuxContainerSecurityContext{ReadonlyRootfs: true})
	if out, _ := w.execOut(t, ro, "touch /x 2>&1; echo rc=$?; touch /tmp/x 2>&1; echo rc=$?"); !strings.Contains(out, "Read-only file system") || strings.Count(out, "rc=1") != 2 {
		t.Errorf("readonly_rootfs: writes to / and /tmp: %q", out)
	}
	// The defaults: /proc/timer_list masked (reads nothing), /proc/sys and
	// /sys read-only.
	def := start("defaults", nil)
	if out, _ := w.execOut(t, def, "head -c 16 /proc/timer_list | wc -c; echo 1 > /proc/sys/kernel/domainname 2>&1; echo rc=$?; grep ' /sys sysfs ' /proc/mounts"); !strings.HasPrefix(out, "0\n") ||
		!strings.Contains(out, "rc=1") || !strings.Contains(out, " /sys sysfs ro,") {
		t.Errorf("default masked and read-only paths: %q", out)
	}
	// The container's own lists replace the defaults.
	own := start("own", &criapi.LinuxContainerSecurityContext{MaskedPaths: []string{"/etc/passwd"}, ReadonlyPaths: []string{"/tmp"}})
	if out, _ := w.execOut(t, own, "wc -c < /etc/passwd; touch /tmp/x 2>&1; echo rc=$?; head -c 16 /proc/timer_list | wc -c"); !strings.HasPrefix(out, "0\n") ||
		!strings.Contains(out, "rc=1") || !strings.HasSuffix(out, "\n16\n") {
		t.Errorf("own masked /etc/passwd, read-only /tmp, /proc/timer_list no longer masked: %q", out)
	}
	// Privileged: nothing masked, sysfs read-write although the pod's
	// other containers mounted the same sysfs read-only before it.
	priv := start("priv", &criapi.LinuxContainerSecurityContext{Privileged: true})
	if out, _ := w.execOut(t, priv, "grep ' /sys sysfs ' /proc/mounts; head -c 16 /proc/timer_list | wc -c"); !strings.Contains(out, " /sys sysfs rw") || !strings.HasSuffix(out, "\n16\n") {
		t.Errorf("privileged: sysfs rw and /proc/timer_list readable: %q", out)
	}
}
