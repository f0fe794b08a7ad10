package harness

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// ShimPid finds the shim process serving a pod, failing the test when
// none does.
func ShimPid(t testing.TB, podID string) int {
	t.Helper()
	pid := FindShim(podID)
	if pid == 0 {
		t.Fatalf("no shim serves pod %s", podID)
	}
	return pid
}

// FindShim is the pid of the shim process serving a pod (of any test env),
// 0 when none does: the kernel names who listens on the pod's socket. One
// process may serve several pods ([shim] pods_per_shim).
func FindShim(podID string) int {
	if len(podID) < 16 {
		return 0
	}
	socks, _ := filepath.Glob(filepath.Join(os.TempDir(), "crib-e2e-*", "state", "shims", podID[:16], shimapi.SocketName))
	for _, sock := range socks {
		if pid := listenerPid(sock); pid != 0 {
			return pid
		}
	}
	return 0
}

// listenerPid is the pid of the process that listens on sock, 0 when none.
func listenerPid(sock string) int {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return 0
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	if err := raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil || cred == nil {
		return 0
	}
	return int(cred.Pid)
}

// shimProc is a running shim: its pid and command line.
type shimProc struct {
	pid  int
	args []string
}

// shims lists the running shims (crib-shim shim ...) whose command line
// match accepts.
func shims(match func(args []string) bool) []shimProc {
	var out []shimProc
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) < 2 || args[1] != "shim" || !match(args) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
			out = append(out, shimProc{pid, args})
		}
	}
	return out
}
