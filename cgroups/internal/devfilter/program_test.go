package devfilter

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
)

// run interprets prog the way the kernel runs it, for the instructions
// Program emits, on struct bpf_cgroup_dev_ctx{access_type, major, minor}.
func run(t *testing.T, prog []Insn, typ, access, major, minor uint32) bool {
	t.Helper()
	ctx := [3]uint32{typ | access<<16, major, minor}
	var reg [11]uint64
	for pc, steps := 0, 0; ; pc, steps = pc+1, steps+1 {
		if pc < 0 || pc >= len(prog) || steps > 10000 {
			t.Fatalf("pc %d out of the program (%d insns)", pc, len(prog))
		}
		in := prog[pc]
		switch in.Op {
		case OpLoadW:
			if in.Src != r1 || in.Off%4 != 0 || in.Off < 0 || in.Off > 8 {
				t.Fatalf("insn %d: load outside the context: %+v", pc, in)
			}
			reg[in.Dst] = uint64(ctx[in.Off/4])
		case OpAnd32:
			reg[in.Dst] = uint64(uint32(reg[in.Dst]) & uint32(in.Imm))
		case OpRsh32:
			reg[in.Dst] = uint64(uint32(reg[in.Dst]) >> uint32(in.Imm))
		case OpMov32:
			reg[in.Dst] = uint64(uint32(in.Imm))
		case OpMov32R:
			reg[in.Dst] = uint64(uint32(reg[in.Src]))
		case OpJneImm:
			if reg[in.Dst] != uint64(int64(in.Imm)) {
				pc += int(in.Off)
			}
		case OpJneReg:
			if reg[in.Dst] != reg[in.Src] {
				pc += int(in.Off)
			}
		case OpExit:
			return reg[0] == 1
		default:
			t.Fatalf("insn %d: unexpected opcode %#x", pc, in.Op)
		}
	}
}

// criDefault is cri/spec's default rule list: deny all, mknod of any char
// and block device, then the nodes every container needs.
func criDefault() []cgroups.DeviceRule {
	rule := func(typ cgroups.DeviceType, major, minor int64, access string) cgroups.DeviceRule {
		return cgroups.DeviceRule{Allow: true, Type: typ, Major: major, Minor: minor, Access: access}
	}
	any := cgroups.AnyDevice
	return []cgroups.DeviceRule{
		{Allow: false, Type: cgroups.DeviceAll, Major: any, Minor: any, Access: "rwm"},
		rule('c', any, any, "m"), rule('b', any, any, "m"),
		rule('c', 1, 3, "rwm"), rule('c', 1, 8, "rwm"), rule('c', 1, 7, "rwm"), rule('c', 5, 0, "rwm"),
		rule('c', 1, 5, "rwm"), rule('c', 1, 9, "rwm"), rule('c', 136, any, "rwm"), rule('c', 5, 2, "rwm"),
		rule('c', 10, 200, "rwm"),
		rule('c', 4, 1, "r"), // a CRI device given read only
	}
}

const (
	chr, blk = unix.BPF_DEVCG_DEV_CHAR, unix.BPF_DEVCG_DEV_BLOCK
	rd, wr   = unix.BPF_DEVCG_ACC_READ, unix.BPF_DEVCG_ACC_WRITE
	mk       = unix.BPF_DEVCG_ACC_MKNOD
)

func TestProgramDecides(t *testing.T) {
	set, err := cgroups.NewDeviceSet(criDefault())
	if err != nil {
		t.Fatal(err)
	}
	allowAll, err := cgroups.NewDeviceSet(cgroups.AllowAllDevices())
	if err != nil {
		t.Fatal(err)
	}
	denyDisk, err := cgroups.NewDeviceSet(append(cgroups.AllowAllDevices(),
		cgroups.DeviceRule{Type: 'b', Major: 8, Minor: cgroups.AnyDevice, Access: "rw"}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                      string
		set                       cgroups.DeviceSet
		typ, access, major, minor uint32
		want                      bool
	}{
		{"null read", set, chr, rd, 1, 3, true},
		{"null read write", set, chr, rd | wr, 1, 3, true},
		{"zero", set, chr, rd, 1, 5, true},
		{"urandom", set, chr, rd, 1, 9, true},
		{"pts any minor", set, chr, rd | wr, 136, 12345, true},
		{"tty", set, chr, wr, 5, 0, true},
		{"vcs read", set, chr, rd, 7, 0, false},
		{"vcs mknod", set, chr, mk, 7, 0, true},
		{"disk mknod", set, blk, mk, 8, 0, true},
		{"disk read", set, blk, rd, 8, 0, false},
		{"kmsg", set, chr, rd, 1, 11, false},
		{"mem", set, chr, rd, 1, 1, false},
		{"null as block", set, blk, rd, 1, 3, false},
		{"read-only device read", set, chr, rd, 4, 1, true},
		{"read-only device write", set, chr, wr, 4, 1, false},
		{"read-only device read write", set, chr, rd | wr, 4, 1, false},
		{"allow all disk", allowAll, blk, rd | wr, 8, 0, true},
		{"allow all kmsg", allowAll, chr, rd, 1, 11, true},
		{"deny disk read", denyDisk, blk, rd, 8, 3, false},
		{"deny disk mknod allowed", denyDisk, blk, mk, 8, 3, true},
		{"deny disk other block", denyDisk, blk, rd, 259, 0, true},
		{"empty list denies", cgroups.DeviceSet{}, chr, rd, 1, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := Decode(Encode(Program(tt.set)))
			if got := run(t, prog, tt.typ, tt.access, tt.major, tt.minor); got != tt.want {
				t.Errorf("type %d access %#x %d:%d: allowed %v, want %v", tt.typ, tt.access, tt.major, tt.minor, got, tt.want)
			}
		})
	}
}

// TestProgramMatchesRules checks every device a rule names, and its
// neighbours, against the rule list read as the v1 kernel reads it.
func TestProgramMatchesRules(t *testing.T) {
	set, err := cgroups.NewDeviceSet(criDefault())
	if err != nil {
		t.Fatal(err)
	}
	prog := Program(set)
	accessOf := map[uint32]byte{rd: 'r', wr: 'w', mk: 'm'}
	for _, typ := range []uint32{chr, blk} {
		for major := uint32(0); major < 140; major++ {
			for _, minor := range []uint32{0, 1, 2, 3, 5, 7, 8, 9, 11, 200, 4095} {
				for acc, letter := range accessOf {
					want := false
					for _, e := range set.Exceptions {
						typeOK := (e.Type == 'c') == (typ == chr)
						majOK := e.Major == cgroups.AnyDevice || e.Major == int64(major)
						minOK := e.Minor == cgroups.AnyDevice || e.Minor == int64(minor)
						if typeOK && majOK && minOK && containsByte(e.Access, letter) {
							want = true
						}
					}
					if got := run(t, prog, typ, acc, major, minor); got != want {
						t.Fatalf("%s: allowed %v, want %v", fmt.Sprintf("type %d %c %d:%d", typ, letter, major, minor), got, want)
					}
				}
			}
		}
	}
}

func containsByte(s string, b byte) bool {
	for i := range len(s) {
		if s[i] == b {
			return true
		}
	}
	return false
}

func TestEncodeRoundTrip(t *testing.T) {
	in := []Insn{{Op: OpJneImm, Dst: rMinor, Src: 0, Off: 7, Imm: 200}, {Op: OpJneReg, Dst: r1, Src: rAccess, Off: -1}}
	b := Encode(in)
	if len(b) != 16 {
		t.Fatalf("%d bytes, want 16", len(b))
	}
	// struct bpf_insn: code, the registers (dst in the low nibble on a
	// little-endian host, the high one on a big-endian one), off, imm.
	regs, off, imm := byte(r1|rAccess<<4), b[2:4], b[4:8]
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 {
		regs = r1<<4 | rAccess
	}
	if b[0] != OpJneImm || binary.NativeEndian.Uint16(off) != 7 || binary.NativeEndian.Uint32(imm) != 200 || b[9] != regs {
		t.Errorf("encoding % x", b)
	}
	out := Decode(b)
	if len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Errorf("round trip %+v, want %+v", out, in)
	}
}
