//go:build linux && amd64

package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The tests load real filters, each in a child process (a filter cannot
// be removed): the test binary re-executed with envChild set runs child().
const (
	envChild   = "CRIB_SECCOMP_TEST_CHILD"
	envProfile = "CRIB_SECCOMP_TEST_PROFILE"
	envCalls   = "CRIB_SECCOMP_TEST_CALLS"
	envExec    = "CRIB_SECCOMP_TEST_EXEC"
)

// call is one system call the child makes after loading the filter.
type call struct {
	Nr   uintptr
	Args [6]uintptr
}

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		child()
		return
	}
	os.Exit(m.Run())
}

// child loads the profile and makes the calls on the same thread, printing
// each one's errno (0 for success), or execs envExec.
func child() {
	runtime.LockOSThread()
	var p specs.LinuxSeccomp
	var calls []call
	if err := json.Unmarshal([]byte(os.Getenv(envProfile)), &p); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	_ = json.Unmarshal([]byte(os.Getenv(envCalls)), &calls)
	f, err := Compile(&p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		os.Exit(3)
	}
	if err := f.Load(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	if exe := os.Getenv(envExec); exe != "" {
		err := syscall.Exec(exe, []string{exe}, nil)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	out := make([]string, len(calls))
	for i, c := range calls {
		_, _, errno := unix.RawSyscall6(c.Nr, c.Args[0], c.Args[1], c.Args[2], c.Args[3], c.Args[4], c.Args[5])
		out[i] = strconv.Itoa(int(errno))
	}
	// One write: the filter may deny more than the calls under test, but
	// the tests' profiles allow write.
	os.Stdout.WriteString(strings.Join(out, " ") + "\n")
	os.Exit(0)
}

// runChild runs the child and returns its stdout, stderr and wait status.
func runChild(t *testing.T, p specs.LinuxSeccomp, calls []call, execPath string) (string, string, syscall.WaitStatus) {
	t.Helper()
	pj, _ := json.Marshal(p)
	cj, _ := json.Marshal(calls)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envProfile+"="+string(pj), envCalls+"="+string(cj), envExec+"="+execPath)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run child: %v", err)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Exited() && ws.ExitStatus() == 3 {
		t.Fatalf("child could not load the filter: %s", stderr.String())
	}
	return strings.TrimSpace(stdout.String()), stderr.String(), ws
}

func uptr(v uint) *uint { return &v }

// getppid ignores its arguments, so the filter sees whatever we pass: a
// harmless system call to test conditions with.
func getppid(args ...uintptr) call {
	c := call{Nr: unix.SYS_GETPPID}
	copy(c.Args[:], args)
	return c
}

func TestActionErrno(t *testing.T) {
	p := specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EXDEV))},
			{Names: []string{"getpgrp"}, Action: specs.ActErrno}, // EPERM when unset
		},
	}
	out, _, _ := runChild(t, p, []call{getppid(), {Nr: unix.SYS_GETPGRP}, {Nr: unix.SYS_GETPID}}, "")
	want := fmt.Sprintf("%d %d 0", unix.EXDEV, unix.EPERM)
	if out != want {
		t.Fatalf("errnos = %q, want %q", out, want)
	}
}

func TestActionAllowAndLog(t *testing.T) {
	for _, act := range []specs.LinuxSeccompAction{specs.ActAllow, specs.ActLog} {
		t.Run(string(act), func(t *testing.T) {
			p := specs.LinuxSeccomp{
				DefaultAction:   specs.ActErrno,
				DefaultErrnoRet: uptr(uint(unix.EXDEV)),
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"write", "exit_group", "exit", "futex", "getppid", "rt_sigreturn", "rt_sigprocmask", "sched_yield", "nanosleep", "mmap", "munmap", "madvise"}, Action: specs.ActAllow},
					{Names: []string{"getpgrp"}, Action: act},
				},
			}
			// getpid is not listed: the default errno. getpgrp passes.
			out, stderr, _ := runChild(t, p, []call{{Nr: unix.SYS_GETPGRP}, {Nr: unix.SYS_GETPID}}, "")
			want := fmt.Sprintf("0 %d", unix.EXDEV)
			if out != want {
				t.Fatalf("errnos = %q, want %q (stderr %s)", out, want, stderr)
			}
		})
	}
}

func TestActionKillProcess(t *testing.T) {
	p := specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActKillProcess}},
	}
	out, _, ws := runChild(t, p, []call{getppid()}, "")
	if !ws.Signaled() || ws.Signal() != unix.SIGSYS || out != "" {
		t.Fatalf("child: %v, stdout %q; want killed by SIGSYS before printing", ws, out)
	}
}

// KILL_THREAD kills only the calling thread, which in a Go process would
// leave the others running: exec a single-threaded program instead.
func TestActionKillThread(t *testing.T) {
	uname, err := exec.LookPath("uname")
	if err != nil {
		t.Fatalf("need uname: %v", err)
	}
	for _, act := range []specs.LinuxSeccompAction{specs.ActKill, specs.ActKillThread} {
		p := specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"uname"}, Action: act}},
		}
		out, _, ws := runChild(t, p, nil, uname)
		if !ws.Signaled() || ws.Signal() != unix.SIGSYS || out != "" {
			t.Fatalf("%s: uname: %v, stdout %q; want killed by SIGSYS", act, ws, out)
		}
	}
}

// TRAP sends a catchable SIGSYS: the Go runtime catches it and reports
// it (exit status 2), which tells it apart from being killed.
func TestActionTrap(t *testing.T) {
	p := specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActTrap}},
	}
	_, stderr, ws := runChild(t, p, []call{getppid()}, "")
	if !ws.Exited() || !strings.Contains(stderr, "SIGSYS") {
		t.Fatalf("child: %v, stderr %q; want the runtime's report of a caught SIGSYS", ws, stderr)
	}
}

// TRACE with no tracer attached fails the call with ENOSYS, seccomp(2).
func TestActionTraceWithoutTracer(t *testing.T) {
	p := specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActTrace}},
	}
	out, _, _ := runChild(t, p, []call{getppid()}, "")
	if want := strconv.Itoa(int(unix.ENOSYS)); out != want {
		t.Fatalf("errno = %q, want %q", out, want)
	}
}

// opCase checks one operator against values around a 64-bit operand whose
// halves both matter.
func TestArgumentOperators(t *testing.T) {
	const v = 0x1_0000_0005
	const mask, want2 = 0xff00_0000_00ff, 0x1200_0000_0034
	probes := []uint64{0, 4, 5, 6, 0x4, 0x1_0000_0004, v, 0x1_0000_0006, 0x2_0000_0000, 0xffff_ffff, 0xffff_ffff_ffff_ffff,
		0x1200_0000_0034, 0x12ab_cdef_0134, 0x1300_0000_0034, 0x1200_0000_0035}
	ops := map[specs.LinuxSeccompOperator]func(x uint64) bool{
		specs.OpEqualTo:      func(x uint64) bool { return x == v },
		specs.OpNotEqual:     func(x uint64) bool { return x != v },
		specs.OpLessThan:     func(x uint64) bool { return x < v },
		specs.OpLessEqual:    func(x uint64) bool { return x <= v },
		specs.OpGreaterThan:  func(x uint64) bool { return x > v },
		specs.OpGreaterEqual: func(x uint64) bool { return x >= v },
		specs.OpMaskedEqual:  func(x uint64) bool { return x&mask == want2 },
	}
	for op, holds := range ops {
		t.Run(string(op), func(t *testing.T) {
			arg := specs.LinuxSeccompArg{Index: 2, Value: v, Op: op}
			if op == specs.OpMaskedEqual {
				arg.Value, arg.ValueTwo = mask, want2
			}
			p := specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls: []specs.LinuxSyscall{{
					Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EXDEV)),
					Args: []specs.LinuxSeccompArg{arg},
				}},
			}
			var calls []call
			var want []string
			for _, x := range probes {
				calls = append(calls, getppid(0, 0, uintptr(x)))
				w := "0"
				if holds(x) {
					w = strconv.Itoa(int(unix.EXDEV))
				}
				want = append(want, w)
			}
			out, _, _ := runChild(t, p, calls, "")
			if got := strings.Fields(out); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("%s %#x: errnos for %#x = %v, want %v", op, v, probes, got, want)
			}
		})
	}
}

// Conditions of one rule are ANDed; rules for one call are ORed, the
// first matching rule's action winning.
func TestArgumentsAndRules(t *testing.T) {
	p := specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EXDEV)), Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 1, Op: specs.OpEqualTo}, {Index: 5, Value: 7, Op: specs.OpEqualTo}}},
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.ENOTDIR)), Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 2, Op: specs.OpEqualTo}}},
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EISDIR)), Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
		},
	}
	calls := []call{getppid(1, 0, 0, 0, 0, 7), getppid(1, 0, 0, 0, 0, 8), getppid(2), getppid(3)}
	want := fmt.Sprintf("%d %d %d 0", unix.EXDEV, unix.EISDIR, unix.ENOTDIR)
	out, _, _ := runChild(t, p, calls, "")
	if out != want {
		t.Fatalf("errnos = %q, want %q", out, want)
	}
}

// A number above every listed one gets ENOSYS when the default denies;
// an unknown name is skipped with a warning.
func TestNewerSyscallsAndUnknownNames(t *testing.T) {
	p := specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"write", "exit_group", "exit", "futex", "rt_sigreturn", "rt_sigprocmask", "sched_yield", "nanosleep", "mmap", "munmap", "madvise", "getppid"}, Action: specs.ActAllow},
			{Names: []string{"no_such_call"}, Action: specs.ActAllow},
		},
	}
	f, err := Compile(&p)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], `"no_such_call"`) {
		t.Fatalf("warnings = %q, want one naming no_such_call", f.Warnings)
	}
	// getpid (39) is below the highest listed number (getppid, 110):
	// EPERM; 1000 is above it: ENOSYS.
	out, _, _ := runChild(t, p, []call{{Nr: unix.SYS_GETPID}, {Nr: 1000}, getppid()}, "")
	want := fmt.Sprintf("%d %d 0", unix.EPERM, unix.ENOSYS)
	if out != want {
		t.Fatalf("errnos = %q, want %q", out, want)
	}
}

func TestCompileRefusesBadProfiles(t *testing.T) {
	cases := map[string]specs.LinuxSeccomp{
		"unknown operator":  {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_FOO"}}}}},
		"index 6":           {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
		"notify":            {DefaultAction: specs.ActNotify},
		"unknown action":    {DefaultAction: "SCMP_ACT_MAYBE"},
		"listener":          {DefaultAction: specs.ActAllow, ListenerPath: "/run/x.sock"},
		"unknown arch":      {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_VAX"}},
		"errno too big":     {DefaultAction: specs.ActErrno, DefaultErrnoRet: uptr(1 << 20)},
		"unknown flag":      {DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FOO"}},
		"rule with no name": {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Action: specs.ActErrno}}},
	}
	for name, p := range cases {
		if _, err := Compile(&p); err == nil {
			t.Errorf("%s: Compile succeeded, want an error", name)
		}
	}
}
