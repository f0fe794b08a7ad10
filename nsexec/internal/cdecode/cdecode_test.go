package cdecode

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/nsexec/nsproto"
)

func msg(t testing.TB, b nsproto.Bootstrap) []byte {
	t.Helper()
	m, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// raw builds a message from hand-made attributes, bypassing the encoder.
func raw(attrs ...[]byte) []byte {
	var body []byte
	for _, a := range attrs {
		body = append(body, a...)
	}
	m := binary.LittleEndian.AppendUint32(nil, nsproto.BootstrapMagic)
	m = binary.LittleEndian.AppendUint32(m, nsproto.BootstrapVersion)
	m = binary.LittleEndian.AppendUint32(m, uint32(len(body)))
	return append(m, body...)
}

func attr(typ, length uint16, val []byte) []byte {
	a := binary.LittleEndian.AppendUint16(nil, typ)
	a = binary.LittleEndian.AppendUint16(a, length)
	return append(a, val...)
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func TestRoundTrip(t *testing.T) {
	adj := -500
	in := nsproto.Bootstrap{
		Role:       nsproto.RoleExec,
		CloneFlags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWCGROUP,
		Namespaces: []nsproto.Namespace{
			{Type: unix.CLONE_NEWNET, Path: "/run/crib/ns/pod/net"},
			{Type: unix.CLONE_NEWIPC, FD: 7},
		},
		OOMScoreAdj: &adj,
		CgroupTasks: []int{8, 9, 10},
		Cgroup2FD:   11,
	}
	out, err := Decode(msg(t, in))
	if err != nil {
		t.Fatal(err)
	}
	if out.Role != in.Role || out.CloneFlags != in.CloneFlags || *out.OOMScoreAdj != adj || len(out.Namespaces) != 2 ||
		out.Namespaces[0] != (Namespace{Type: unix.CLONE_NEWNET, FD: -1, Path: "/run/crib/ns/pod/net"}) ||
		out.Namespaces[1] != (Namespace{Type: unix.CLONE_NEWIPC, FD: 7}) ||
		!slices.Equal(out.CgroupTasks, in.CgroupTasks) || out.Cgroup2FD != 11 {
		t.Fatalf("decoded %+v", out)
	}
}

func TestRejects(t *testing.T) {
	role := attr(nsproto.AttrRole, 4, u32(nsproto.RoleInit))
	net := func(p string) []byte {
		return attr(nsproto.AttrNsPath, uint16(4+len(p)), append(u32(unix.CLONE_NEWNET), p...))
	}
	long := "/" + strings.Repeat("a", nsproto.PathMax)
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"empty", nil, "short read"},
		{"short header", raw()[:8], "short read"},
		{"bad magic", append([]byte{1, 2, 3, 4}, raw(role)[4:]...), "bad magic"},
		{"bad version", func() []byte { m := raw(role); m[4] = 9; return m }(), "version 9"},
		{"oversize", func() []byte { m := raw(role); binary.LittleEndian.PutUint32(m[8:], 1<<20); return m }(), "exceeds"},
		{"length mismatch", func() []byte { m := raw(role); binary.LittleEndian.PutUint32(m[8:], 100); return m }(), "header says"},
		{"no role", raw(attr(nsproto.AttrCloneFlags, 4, u32(unix.CLONE_NEWNS))), "no role"},
		{"unknown role", raw(attr(nsproto.AttrRole, 4, u32(9))), "unknown role 9"},
		{"role twice", raw(role, role), "given twice"},
		{"unknown attribute", raw(role, attr(99, 0, nil)), "unknown attribute type 99"},
		{"truncated attribute header", raw(role, []byte{3, 0}), "truncated attribute header"},
		{"attribute overrun", raw(role, attr(nsproto.AttrNsPath, 200, u32(unix.CLONE_NEWNET))), "overruns"},
		{"short u32", raw(attr(nsproto.AttrRole, 2, []byte{1, 0})), "want 4"},
		{"non-namespace clone flag", raw(role, attr(nsproto.AttrCloneFlags, 4, u32(unix.CLONE_VM))), "non-namespace bits"},
		{"unknown ns type", raw(role, attr(nsproto.AttrNsPath, 6, append(u32(0x4), "/x"...))), "unknown namespace type"},
		{"duplicate namespace", raw(role, net("/a"), net("/b")), "net namespace given twice"},
		{"joined and created", raw(role, net("/a"), attr(nsproto.AttrCloneFlags, 4, u32(unix.CLONE_NEWNET))), "both joined and created"},
		{"relative path", raw(role, net("run/ns")), "not an absolute path"},
		{"empty path", raw(role, net("")), "not an absolute path"},
		{"NUL in path", raw(role, net("/a\x00b")), "not an absolute path"},
		{"path too long", raw(role, attr(nsproto.AttrNsPath, uint16(4+len(long)), append(u32(unix.CLONE_NEWNET), long...))), "not an absolute path"},
		{"stdio fd", raw(role, attr(nsproto.AttrNsFd, 8, append(u32(unix.CLONE_NEWNET), u32(1)...))), "not an inherited fd"},
		{"fd attribute size", raw(role, attr(nsproto.AttrNsFd, 6, append(u32(unix.CLONE_NEWNET), 5, 0))), "malformed"},
		{"oom range", raw(role, attr(nsproto.AttrOomScoreAdj, 4, u32(uint32(2000)))), "out of range"},
		{"tasks stdio fd", raw(role, attr(nsproto.AttrCgroupTasksFd, 4, u32(2))), "cgroup tasks fd 2"},
		{"tasks size", raw(role, attr(nsproto.AttrCgroupTasksFd, 2, []byte{5, 0})), "cgroup tasks attribute has 2 bytes"},
		{"too many tasks", raw(append([][]byte{role}, slices.Repeat([][]byte{attr(nsproto.AttrCgroupTasksFd, 4, u32(5))}, nsproto.MaxCgroupTasks+1)...)...),
			"more than 16 cgroup tasks fds"},
		{"cgroup2 fd", raw(role, attr(nsproto.AttrCgroup2Fd, 4, u32(0))), "cgroup2 fd 0"},
		{"cgroup2 twice", raw(role, attr(nsproto.AttrCgroup2Fd, 4, u32(5)), attr(nsproto.AttrCgroup2Fd, 4, u32(6))), "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.msg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// FuzzDecode feeds the C decoder arbitrary bytes: it must never crash or read
// past the buffer, and what it accepts must be a consistent bootstrap.
func FuzzDecode(f *testing.F) {
	adj := 10
	for _, b := range []nsproto.Bootstrap{
		{Role: nsproto.RoleInit, CloneFlags: unix.CLONE_NEWNS | unix.CLONE_NEWPID},
		{Role: nsproto.RolePause, CloneFlags: unix.CLONE_NEWPID, Namespaces: []nsproto.Namespace{{Type: unix.CLONE_NEWNET, Path: "/run/ns/net"}}},
		{Role: nsproto.RoleExec, Namespaces: []nsproto.Namespace{{Type: unix.CLONE_NEWUSER, FD: 5}, {Type: unix.CLONE_NEWNS, FD: 6}}, OOMScoreAdj: &adj},
		{Role: nsproto.RoleInit, CgroupTasks: []int{5, 6}, Cgroup2FD: 7},
	} {
		f.Add(msg(f, b))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data)
		if err != nil {
			return
		}
		if b.Role < nsproto.RoleInit || b.Role > nsproto.RolePause {
			t.Fatalf("accepted role %d", b.Role)
		}
		seen := uint32(0)
		for _, ns := range b.Namespaces {
			if seen&ns.Type != 0 || b.CloneFlags&ns.Type != 0 {
				t.Fatalf("accepted a duplicate or joined-and-created namespace: %+v", b)
			}
			seen |= ns.Type
			if (ns.FD < 0) == (ns.Path == "") || (ns.Path != "" && ns.Path[0] != '/') {
				t.Fatalf("accepted namespace %+v", ns)
			}
		}
		if len(b.CgroupTasks) > nsproto.MaxCgroupTasks || slices.ContainsFunc(b.CgroupTasks, func(fd int) bool { return fd < 3 }) ||
			(b.Cgroup2FD != 0 && b.Cgroup2FD < 3) {
			t.Fatalf("accepted cgroup fds %v, %d", b.CgroupTasks, b.Cgroup2FD)
		}
	})
}

// TestLibFuzzerCorpus replays the corpus hack/fuzz-nsexec.sh grew with
// libFuzzer, so every input it found interesting stays a regression test.
func TestLibFuzzerCorpus(t *testing.T) {
	files, err := filepath.Glob("../../fuzz/corpus/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Decode(data)
		if err != nil {
			continue
		}
		if b.Role < nsproto.RoleInit || b.Role > nsproto.RolePause || len(b.Namespaces) > nsproto.MaxNamespaces {
			t.Errorf("%s: accepted %+v", filepath.Base(f), b)
		}
	}
}
