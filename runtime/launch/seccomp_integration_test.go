package launch_test

import (
	"os"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
)

// TestSeccompUnknownSyscallWarns: a profile naming a system call this
// kernel's table lacks still loads, and init says so on the log pipe,
// which reaches Options.Log (the shim logs it).
func TestSeccompUnknownSyscallWarns(t *testing.T) {
	out, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var mu sync.Mutex
	var lines []string
	spec := initSpec(busyboxRootfs(t), "/bin/sh", "-c", "while read k v; do [ \"$k\" = Seccomp: ] && echo \"$k $v\"; done </proc/self/status; true")
	spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"crib_no_such_call", "mkdir"}, Action: specs.ActErrno},
	}}
	p := startInit(t, launch.Options{Binary: testBinary(t), Role: nsproto.RoleInit, New: containerNS, Stdout: out, Stderr: out,
		Log:    func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() },
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec}})
	if st, err := p.Wait(); err != nil || !st.Success() {
		t.Fatalf("probe: %v %v", st, err)
	}
	if got, _ := os.ReadFile(out.Name()); string(got) != "Seccomp: 2\n" {
		t.Fatalf("the process's seccomp mode: %q, want 2 (filter)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range lines {
		if strings.Contains(l, `"level":"warning"`) && strings.Contains(l, `crib_no_such_call`) {
			return
		}
	}
	t.Fatalf("no warning naming crib_no_such_call in the log: %q", lines)
}
