//go:build linux && amd64

package seccomp

import (
	"fmt"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// run interprets prog (the subset Compile emits) on one seccomp_data, for
// what a test cannot make the kernel do: calls with another ABI.
func run(t *testing.T, prog []unix.SockFilter, nr, arch uint32, args [6]uint64) uint32 {
	t.Helper()
	word := func(off uint32) uint32 {
		switch {
		case off == offNr:
			return nr
		case off == offArch:
			return arch
		case off >= offArgs && off < offArgs+48:
			a := args[(off-offArgs)/8]
			if (off-offArgs)%8 == 4 {
				return uint32(a >> 32)
			}
			return uint32(a)
		}
		t.Fatalf("load at offset %d", off)
		return 0
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = word(in.K)
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		default:
			var cond bool
			switch in.Code {
			case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
				cond = acc == in.K
			case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
				cond = acc > in.K
			case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
				cond = acc >= in.K
			case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
				cond = acc&in.K != 0
			default:
				t.Fatalf("instruction %d: unknown code %#x", pc, in.Code)
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
	}
	t.Fatalf("fell off the end of the program")
	return 0
}

// Calls made with the i386 or x32 ABI are killed, even under a profile
// that allows everything else: the rules are judged by x86_64 numbers.
func TestForeignABIKilled(t *testing.T) {
	f, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		nr, arch uint32
		want     uint32
	}{
		{"x86_64 getpid", unix.SYS_GETPID, unix.AUDIT_ARCH_X86_64, retAllow},
		{"x86_64 mkdir", unix.SYS_MKDIR, unix.AUDIT_ARCH_X86_64, retErrno | uint32(unix.EPERM)},
		{"i386 call", 39, unix.AUDIT_ARCH_I386, retKillProcess},
		{"x32 mkdir", x32Bit | unix.SYS_MKDIR, unix.AUDIT_ARCH_X86_64, retKillProcess},
		{"x32 getpid", x32Bit | unix.SYS_GETPID, unix.AUDIT_ARCH_X86_64, retKillProcess},
	} {
		if got := run(t, f.Program, tc.nr, tc.arch, [6]uint64{}); got != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

// A system call with more rules than an 8-bit jump can skip is reached
// through a long jump; checked in the kernel, since the layout is what
// could go wrong.
func TestManyRulesForOneCall(t *testing.T) {
	p := specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for i := range 80 {
		e := uint(i + 1)
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: &e,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: uint64(i), Op: specs.OpEqualTo}}})
	}
	// A later call, to check the jump over getppid's block lands on it.
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"getpgrp"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EXDEV))})
	f, err := Compile(&p)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Program) < 400 {
		t.Fatalf("program of %d instructions: the test needs a block longer than 255", len(f.Program))
	}
	out, _, _ := runChild(t, p, []call{getppid(0), getppid(79), getppid(80), {Nr: unix.SYS_GETPGRP}, {Nr: unix.SYS_GETPID}}, "")
	if want := fmt.Sprintf("1 80 0 %d 0", unix.EXDEV); out != want {
		t.Fatalf("errnos = %q, want %q", out, want)
	}
}

// TestReviewedSemantics: what a review found wrong, judged by the
// interpreter: a logging default keeps its action above the highest listed
// number (no ENOSYS); several conditions on one argument are alternatives,
// as runc reads them; an int argument's refusal masks its high half.
func TestReviewedSemantics(t *testing.T) {
	compile := func(p specs.LinuxSeccomp) []unix.SockFilter {
		t.Helper()
		f, err := Compile(&p)
		if err != nil {
			t.Fatal(err)
		}
		return f.Program
	}
	x86 := uint32(unix.AUDIT_ARCH_X86_64)
	logDefault := compile(specs.LinuxSeccomp{DefaultAction: specs.ActLog,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}})
	if got := run(t, logDefault, unix.SYS_OPENAT, x86, [6]uint64{}); got != retLog {
		t.Errorf("openat under a LOG default: %#x, want LOG", got)
	}
	eperm := uint(unix.EPERM)
	either := compile(specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
		Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm,
		Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_INET, Op: specs.OpEqualTo}, {Index: 0, Value: unix.AF_INET6, Op: specs.OpEqualTo},
			{Index: 1, Value: unix.SOCK_STREAM, Op: specs.OpEqualTo}}}}})
	for _, tc := range []struct {
		family, typ uint64
		want        uint32
	}{
		{unix.AF_INET, unix.SOCK_STREAM, retErrno | uint32(unix.EPERM)},
		{unix.AF_INET6, unix.SOCK_STREAM, retErrno | uint32(unix.EPERM)},
		{unix.AF_INET6, unix.SOCK_DGRAM, retAllow},
		{unix.AF_UNIX, unix.SOCK_STREAM, retAllow},
	} {
		if got := run(t, either, unix.SYS_SOCKET, x86, [6]uint64{tc.family, tc.typ}); got != tc.want {
			t.Errorf("socket(%d, %d) under 'AF_INET or AF_INET6, and STREAM': %#x, want %#x", tc.family, tc.typ, got, tc.want)
		}
	}
	noVsock := compile(specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, ValueTwo: unix.AF_VSOCK, Op: specs.OpMaskedEqual}}},
		{Names: []string{"socket"}, Action: specs.ActAllow}}})
	for family, want := range map[uint64]uint32{unix.AF_VSOCK: retErrno | uint32(unix.EPERM), 1<<32 | unix.AF_VSOCK: retErrno | uint32(unix.EPERM), unix.AF_INET: retAllow} {
		if got := run(t, noVsock, unix.SYS_SOCKET, x86, [6]uint64{family}); got != want {
			t.Errorf("socket(%#x) under the AF_VSOCK refusal: %#x, want %#x", family, got, want)
		}
	}
}
