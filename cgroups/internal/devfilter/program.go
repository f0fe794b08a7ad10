// Package devfilter builds the eBPF program that is the device cgroup on
// cgroup v2 (BPF_PROG_TYPE_CGROUP_DEVICE) and attaches it to a cgroup.
//
// crib writes the few instructions it needs itself instead of depending on
// github.com/cilium/ebpf (which opencontainers/cgroups' devices package
// uses): the program is a prologue, one block per exception and an exit.
//
// Internal to crib; no API compatibility promised.
package devfilter

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
)

// Insn is one eBPF instruction (struct bpf_insn).
type Insn struct {
	Op  uint8
	Dst uint8
	Src uint8
	Off int16
	Imm int32
}

// The opcodes the program uses (include/uapi/linux/bpf.h, bpf_common.h):
// class | operation | source.
const (
	OpLoadW   = 0x61 // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
	OpAnd32   = 0x54 // BPF_ALU | BPF_AND | BPF_K: dst = (u32)(dst & imm)
	OpRsh32   = 0x74 // BPF_ALU | BPF_RSH | BPF_K: dst = (u32)(dst >> imm)
	OpMov32   = 0xb4 // BPF_ALU | BPF_MOV | BPF_K: dst = (u32)imm
	OpMov32R  = 0xbc // BPF_ALU | BPF_MOV | BPF_X: dst = (u32)src
	OpJneImm  = 0x55 // BPF_JMP | BPF_JNE | BPF_K: if dst != imm, pc += off
	OpJneReg  = 0x5d // BPF_JMP | BPF_JNE | BPF_X: if dst != src, pc += off
	OpExit    = 0x95 // BPF_JMP | BPF_EXIT: return r0
	insnBytes = 8
)

// Registers: r0 is the result (1 allow, 0 deny), r1 points at struct
// bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; } whose
// access_type holds the device type in its low 16 bits and the access
// (BPF_DEVCG_ACC_*) in its high 16.
const (
	r0, r1, rType, rAccess, rMajor, rMinor uint8 = 0, 1, 2, 3, 4, 5
)

// Program returns the program that decides as set does: an exception that
// matches the device's type, numbers and every access bit asked for gives
// the opposite of the default; nothing matching gives the default.
func Program(set cgroups.DeviceSet) []Insn {
	p := []Insn{
		{Op: OpLoadW, Dst: rType, Src: r1, Off: 0},
		{Op: OpAnd32, Dst: rType, Imm: 0xffff},
		{Op: OpLoadW, Dst: rAccess, Src: r1, Off: 0},
		{Op: OpRsh32, Dst: rAccess, Imm: 16},
		{Op: OpLoadW, Dst: rMajor, Src: r1, Off: 4},
		{Op: OpLoadW, Dst: rMinor, Src: r1, Off: 8},
	}
	for _, d := range set.Exceptions {
		p = append(p, block(d, !set.DefaultAllow)...)
	}
	return append(p, result(set.DefaultAllow)...)
}

// block is the test of one exception: each check that fails jumps past the
// block's end (the next block); all passing, the program returns verdict.
func block(d cgroups.DeviceRule, verdict bool) []Insn {
	var checks []Insn
	switch d.Type {
	case cgroups.DeviceChar:
		checks = append(checks, Insn{Op: OpJneImm, Dst: rType, Imm: unix.BPF_DEVCG_DEV_CHAR})
	case cgroups.DeviceBlock:
		checks = append(checks, Insn{Op: OpJneImm, Dst: rType, Imm: unix.BPF_DEVCG_DEV_BLOCK})
	}
	if acc := access(d.Access); acc != allAccess {
		// The access asked for must lie within the rule's: r1 (free
		// after the prologue) = asked & rule; unequal to asked, no match.
		checks = append(checks,
			Insn{Op: OpMov32R, Dst: r1, Src: rAccess},
			Insn{Op: OpAnd32, Dst: r1, Imm: acc},
			Insn{Op: OpJneReg, Dst: r1, Src: rAccess})
	}
	if d.Major != cgroups.AnyDevice {
		checks = append(checks, Insn{Op: OpJneImm, Dst: rMajor, Imm: int32(d.Major)})
	}
	if d.Minor != cgroups.AnyDevice {
		checks = append(checks, Insn{Op: OpJneImm, Dst: rMinor, Imm: int32(d.Minor)})
	}
	res := result(verdict)
	for i := range checks {
		if checks[i].Op == OpJneImm || checks[i].Op == OpJneReg {
			// Relative to the next instruction: the rest of the
			// checks, then the result.
			checks[i].Off = int16(len(checks) - 1 - i + len(res))
		}
	}
	return append(checks, res...)
}

func result(allow bool) []Insn {
	var v int32
	if allow {
		v = 1
	}
	return []Insn{{Op: OpMov32, Dst: r0, Imm: v}, {Op: OpExit}}
}

const allAccess = unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE | unix.BPF_DEVCG_ACC_MKNOD

// access maps "rwm" letters to BPF_DEVCG_ACC_* bits.
func access(s string) int32 {
	var a int32
	for _, c := range s {
		switch c {
		case 'r':
			a |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			a |= unix.BPF_DEVCG_ACC_WRITE
		case 'm':
			a |= unix.BPF_DEVCG_ACC_MKNOD
		}
	}
	return a
}

// Encode lays insns out as the kernel reads them: 8 bytes each, the two
// register numbers sharing a byte whose nibble order follows the host's
// bit-field order (dst in the low nibble on little-endian hosts).
func Encode(insns []Insn) []byte {
	big := binary.NativeEndian.Uint16([]byte{0, 1}) == 1
	out := make([]byte, 0, len(insns)*insnBytes)
	for _, in := range insns {
		regs := in.Dst&0xf | in.Src<<4
		if big {
			regs = in.Dst<<4 | in.Src&0xf
		}
		out = append(out, in.Op, regs)
		out = binary.NativeEndian.AppendUint16(out, uint16(in.Off))
		out = binary.NativeEndian.AppendUint32(out, uint32(in.Imm))
	}
	return out
}

// Decode is Encode's inverse, for tests and for reading a program back.
func Decode(b []byte) []Insn {
	big := binary.NativeEndian.Uint16([]byte{0, 1}) == 1
	out := make([]Insn, 0, len(b)/insnBytes)
	for ; len(b) >= insnBytes; b = b[insnBytes:] {
		in := Insn{Op: b[0], Dst: b[1] & 0xf, Src: b[1] >> 4,
			Off: int16(binary.NativeEndian.Uint16(b[2:])), Imm: int32(binary.NativeEndian.Uint32(b[4:]))}
		if big {
			in.Dst, in.Src = b[1]>>4, b[1]&0xf
		}
		out = append(out, in)
	}
	return out
}
