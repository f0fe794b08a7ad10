//go:build linux

package seccomp

import (
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Return values of a seccomp filter, seccomp(2). The low 16 bits carry
// the errno (ERRNO) or the tracer's message (TRACE).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

// Offsets in struct seccomp_data: nr, arch, instruction_pointer, args[6].
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// Filter is a compiled profile: the program and the flags it is loaded
// with. Warnings name what was skipped (system calls this architecture
// does not have).
type Filter struct {
	Program  []unix.SockFilter
	Flags    uint
	Warnings []string
}

// action returns the filter return value of a profile action. errnoRet
// is the rule's (or the profile's default) errno; runc and libseccomp use
// EPERM when it is unset.
func action(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := uint32(unix.EPERM)
	if errnoRet != nil {
		if *errnoRet > 0xffff {
			return 0, fmt.Errorf("errnoRet %d out of range", *errnoRet)
		}
		data = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActErrno:
		return retErrno | data, nil
	case specs.ActTrace:
		return retTrace | data, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActNotify:
		return 0, fmt.Errorf("action %s: seccomp notification is not supported", a)
	}
	return 0, fmt.Errorf("unknown action %q", a)
}

// filterFlags maps the profile's flags to seccomp(2)'s. TSYNC is accepted
// and ignored: the filter is loaded by the one thread that then execs.
func filterFlags(flags []specs.LinuxSeccompFlag) (uint, error) {
	var out uint
	for _, f := range flags {
		switch f {
		case specs.LinuxSeccompFlagLog:
			out |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			out |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case "SECCOMP_FILTER_FLAG_TSYNC":
		default:
			return 0, fmt.Errorf("unsupported seccomp flag %q", f)
		}
	}
	return out, nil
}

// rule is one syscall entry of the profile for one system call number.
type rule struct {
	ret  uint32
	args []specs.LinuxSeccompArg
}

// Compile turns an OCI seccomp profile into a BPF program for this
// machine's architecture. The program:
//
//   - kills the process for a system call made with another architecture's
//     calling convention (i386's int 0x80, x32): the profile's system call
//     numbers are this architecture's, so such a call would otherwise be
//     judged by the wrong table;
//   - returns, for each listed system call, the action of the first rule
//     whose argument conditions all hold (rules are tried in profile order);
//   - returns ENOSYS, when the default action is not "allow", for numbers
//     above every number the profile names, so that a program probing a
//     system call newer than the profile falls back as it would on an
//     older kernel (runc does the same);
//   - otherwise returns the default action.
func Compile(p *specs.LinuxSeccomp) (*Filter, error) {
	if p == nil {
		return nil, fmt.Errorf("seccomp: no profile")
	}
	if auditArch == 0 {
		return nil, fmt.Errorf("seccomp: architecture %s is not supported", archName)
	}
	if p.ListenerPath != "" {
		return nil, fmt.Errorf("seccomp: listenerPath %q: seccomp notification is not supported", p.ListenerPath)
	}
	def, err := action(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}
	f := &Filter{}
	if f.Flags, err = filterFlags(p.Flags); err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	for _, a := range p.Architectures {
		if !archKnown(a) {
			return nil, fmt.Errorf("seccomp: unknown architecture %q", a)
		}
	}
	byNr := map[uint32][]rule{}
	for i, sc := range p.Syscalls {
		ret, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, sc.Names, err)
		}
		for _, a := range sc.Args {
			if a.Index > 5 {
				return nil, fmt.Errorf("seccomp: syscalls[%d] %v: argument index %d out of range 0-5", i, sc.Names, a.Index)
			}
			if _, ok := compareOps[a.Op]; !ok {
				return nil, fmt.Errorf("seccomp: syscalls[%d] %v: unknown operator %q", i, sc.Names, a.Op)
			}
		}
		if len(sc.Names) == 0 {
			return nil, fmt.Errorf("seccomp: syscalls[%d]: no names", i)
		}
		for _, name := range sc.Names {
			nr, ok := syscallNumbers[name]
			if !ok {
				f.Warnings = append(f.Warnings, fmt.Sprintf("seccomp: system call %q is unknown on %s; its rule is skipped", name, archName))
				continue
			}
			byNr[nr] = append(byNr[nr], splitRule(ret, sc.Args)...)
		}
	}
	f.Program, err = program(byNr, def)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return f, nil
}

// splitRule is one profile entry's rules. Conditions on different
// arguments must all hold; several conditions on the same argument are
// alternatives, each a rule of its own with the other arguments'
// conditions, as runc and libseccomp read them ("arg0 == AF_INET, arg0 ==
// AF_INET6" means either family: ANDed it could never match).
func splitRule(ret uint32, args []specs.LinuxSeccompArg) []rule {
	byIndex := map[uint][]specs.LinuxSeccompArg{}
	var order []uint
	for _, a := range args {
		if _, ok := byIndex[a.Index]; !ok {
			order = append(order, a.Index)
		}
		byIndex[a.Index] = append(byIndex[a.Index], a)
	}
	rules := []rule{{ret: ret}}
	for _, idx := range order {
		var next []rule
		for _, r := range rules {
			for _, alt := range byIndex[idx] {
				next = append(next, rule{ret: ret, args: append(slices.Clone(r.args), alt)})
			}
		}
		rules = next
	}
	return rules
}

// program lays out the filter (see Compile).
func program(byNr map[uint32][]rule, def uint32) ([]unix.SockFilter, error) {
	var a asm
	a.load(offArch)
	a.jump(unix.BPF_JEQ, auditArch, 1, 0)
	a.ret(retKillProcess)
	a.load(offNr)
	if x32Bit != 0 {
		a.jump(unix.BPF_JSET, x32Bit, 0, 1)
		a.ret(retKillProcess)
	}
	nrs := make([]uint32, 0, len(byNr))
	for nr := range byNr {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	for _, nr := range nrs {
		block, err := syscallBlock(byNr[nr], def)
		if err != nil {
			return nil, err
		}
		if len(block) == 1 && block[0].K == def {
			continue // default action: fall through to the end
		}
		// The block ends by returning and starts after the number has been
		// reloaded, so the next test can rely on A holding nr.
		if len(block) <= 255 {
			a.jump(unix.BPF_JEQ, nr, 0, uint8(len(block)))
		} else {
			a.jump(unix.BPF_JEQ, nr, 1, 0)
			a.stmt(unix.BPF_JMP|unix.BPF_JA, uint32(len(block)))
		}
		a.prog = append(a.prog, block...)
	}
	// A number above every listed one is a call newer than the profile:
	// under a denying default it fails as on an older kernel. An allowing,
	// logging or tracing default is no denial and keeps its action.
	if def != retAllow && def != retLog && def&0xffff0000 != retTrace && len(nrs) > 0 {
		a.jump(unix.BPF_JGT, nrs[len(nrs)-1], 0, 1)
		a.ret(retErrno | uint32(unix.ENOSYS))
	}
	a.ret(def)
	if len(a.prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("profile compiles to %d BPF instructions, more than the kernel's %d", len(a.prog), unix.BPF_MAXINSNS)
	}
	return a.prog, nil
}

// syscallBlock is the code for one system call: each rule's conditions,
// then its return; a failed condition goes on to the next rule; after the
// last, the default. It leaves nr in A on every path that does not return
// (it never does not return).
func syscallBlock(rules []rule, def uint32) ([]unix.SockFilter, error) {
	var a asm
	for _, r := range rules {
		if len(r.args) == 0 {
			a.ret(r.ret)
			return a.prog, nil // later rules are unreachable
		}
		var conds asm
		for _, arg := range r.args {
			c := compareOps[arg.Op](arg.Index, arg.Value, arg.ValueTwo)
			conds.prog = append(conds.prog, c...)
		}
		// Each condition jumps to "fail" with a placeholder offset failJump;
		// resolve it now that the rule's length is known: fail is just after
		// the rule's return.
		n := len(conds.prog)
		for i := range conds.prog {
			in := &conds.prog[i]
			if in.Code&0x07 != unix.BPF_JMP || in.Code == unix.BPF_JMP|unix.BPF_JA {
				continue
			}
			for _, off := range []*uint8{&in.Jt, &in.Jf} {
				if *off == failJump {
					d := n - (i + 1) + 1 // past the rest and the return
					if d > 254 {
						return nil, fmt.Errorf("argument conditions too long")
					}
					*off = uint8(d)
				}
			}
		}
		a.prog = append(a.prog, conds.prog...)
		a.ret(r.ret)
	}
	a.ret(def)
	return a.prog, nil
}
