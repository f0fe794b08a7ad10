//go:build linux

package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// failJump marks a conditional jump's target as "this rule does not
// match"; syscallBlock replaces it with the real offset.
const failJump = 255

// asm accumulates classic BPF instructions.
type asm struct{ prog []unix.SockFilter }

func (a *asm) stmt(code uint16, k uint32) {
	a.prog = append(a.prog, unix.SockFilter{Code: code, K: k})
}

func (a *asm) jump(op uint16, k uint32, jt, jf uint8) {
	a.prog = append(a.prog, unix.SockFilter{Code: unix.BPF_JMP | op | unix.BPF_K, Jt: jt, Jf: jf, K: k})
}

func (a *asm) ret(k uint32) { a.stmt(unix.BPF_RET|unix.BPF_K, k) }

func (a *asm) load(off uint32) { a.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }

// argHalves returns the offsets of the high and low 32 bits of argument i
// in seccomp_data (little endian: the low half first).
func argHalves(i uint) (hi, lo uint32) {
	lo = offArgs + 8*uint32(i)
	return lo + 4, lo
}

// compareOps compiles one 64-bit argument condition from two 32-bit
// comparisons. The code falls through when the condition holds and jumps
// to failJump when it does not.
var compareOps = map[specs.LinuxSeccompOperator]func(i uint, v, v2 uint64) []unix.SockFilter{
	specs.OpEqualTo: func(i uint, v, _ uint64) []unix.SockFilter {
		hi, lo := argHalves(i)
		var a asm
		a.load(hi)
		a.jump(unix.BPF_JEQ, uint32(v>>32), 0, failJump)
		a.load(lo)
		a.jump(unix.BPF_JEQ, uint32(v), 0, failJump)
		return a.prog
	},
	specs.OpNotEqual: func(i uint, v, _ uint64) []unix.SockFilter {
		hi, lo := argHalves(i)
		var a asm
		a.load(hi)
		a.jump(unix.BPF_JEQ, uint32(v>>32), 0, 2) // high halves differ: holds
		a.load(lo)
		a.jump(unix.BPF_JEQ, uint32(v), failJump, 0)
		return a.prog
	},
	specs.OpMaskedEqual: func(i uint, mask, want uint64) []unix.SockFilter {
		hi, lo := argHalves(i)
		var a asm
		a.load(hi)
		a.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, uint32(mask>>32))
		a.jump(unix.BPF_JEQ, uint32(want>>32), 0, failJump)
		a.load(lo)
		a.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, uint32(mask))
		a.jump(unix.BPF_JEQ, uint32(want), 0, failJump)
		return a.prog
	},
	specs.OpGreaterThan: func(i uint, v, _ uint64) []unix.SockFilter {
		return greater(i, v, unix.BPF_JGT)
	},
	specs.OpGreaterEqual: func(i uint, v, _ uint64) []unix.SockFilter {
		return greater(i, v, unix.BPF_JGE)
	},
	specs.OpLessThan: func(i uint, v, _ uint64) []unix.SockFilter {
		return less(i, v, unix.BPF_JGE)
	},
	specs.OpLessEqual: func(i uint, v, _ uint64) []unix.SockFilter {
		return less(i, v, unix.BPF_JGT)
	},
}

// greater: the high half above v's holds; equal high halves compare the
// low halves with lowOp (JGT for >, JGE for >=); below fails.
func greater(i uint, v uint64, lowOp uint16) []unix.SockFilter {
	hi, lo := argHalves(i)
	var a asm
	a.load(hi)
	a.jump(unix.BPF_JGT, uint32(v>>32), 3, 0)
	a.jump(unix.BPF_JEQ, uint32(v>>32), 0, failJump)
	a.load(lo)
	a.jump(lowOp, uint32(v), 0, failJump)
	return a.prog
}

// less: the high half above v's fails; below holds; equal high halves
// fail when the low half is at or above (lowOp JGE, for <) or above (JGT,
// for <=) v's.
func less(i uint, v uint64, lowOp uint16) []unix.SockFilter {
	hi, lo := argHalves(i)
	var a asm
	a.load(hi)
	a.jump(unix.BPF_JGT, uint32(v>>32), failJump, 0)
	a.jump(unix.BPF_JEQ, uint32(v>>32), 0, 2)
	a.load(lo)
	a.jump(lowOp, uint32(v), failJump, 0)
	return a.prog
}
