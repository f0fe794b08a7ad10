package spec

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	bpf "github.com/crib-runtime/crib/internal/seccomp"
)

// allows reports whether p has an unconditional allow rule for name.
func allows(p *specs.LinuxSeccomp, name string) bool {
	for _, s := range p.Syscalls {
		if s.Action == specs.ActAllow && len(s.Args) == 0 && slices.Contains(s.Names, name) {
			return true
		}
	}
	return false
}

func names(p *specs.LinuxSeccomp) []string {
	var out []string
	for _, s := range p.Syscalls {
		out = append(out, s.Names...)
	}
	return out
}

const blockMkdirProfile = `{
  "defaultAction": "SCMP_ACT_ALLOW",
  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
  "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18},
    {"name": "sethostname", "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["amd64"]}},
    {"names": ["acct"], "action": "SCMP_ACT_ERRNO", "includes": {"arches": ["s390x"]}}
  ]
}`

func TestSeccompSelection(t *testing.T) {
	files := map[string]string{"/var/lib/kubelet/seccomp/block-mkdir.json": blockMkdirProfile,
		"/profiles/typo.json": `{"defaultAction": "SCMP_ACT_ALLOW", "syscall": []}`}
	readFile := func(p string) ([]byte, error) {
		if b, ok := files[p]; ok {
			return []byte(b), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	rd := &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}
	unconfined := &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Unconfined}
	local := func(p string) *criapi.SecurityProfile {
		return &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: p}
	}
	for _, tc := range []struct {
		name                 string
		ctr, pod             *criapi.SecurityProfile
		ctrPath, podPath     string
		privileged, sysAdmin bool
		want                 string // "none", "default", "local"
		err                  errKind
		mention              string
	}{
		{name: "nothing set: unconfined", want: "none"},
		{name: "empty profile is RuntimeDefault", ctr: &criapi.SecurityProfile{}, want: "default"},
		{name: "container RuntimeDefault", ctr: rd, want: "default"},
		{name: "pod RuntimeDefault applies", pod: rd, want: "default"},
		{name: "container Unconfined wins over the pod", ctr: unconfined, pod: rd, want: "none"},
		{name: "container Localhost", ctr: local("/var/lib/kubelet/seccomp/block-mkdir.json"), want: "local"},
		{name: "pod Localhost", pod: local("/var/lib/kubelet/seccomp/block-mkdir.json"), want: "local"},
		{name: "deprecated runtime/default", ctrPath: "runtime/default", want: "default"},
		{name: "deprecated docker/default on the pod", podPath: "docker/default", want: "default"},
		{name: "deprecated localhost", ctrPath: "localhost//var/lib/kubelet/seccomp/block-mkdir.json", want: "local"},
		{name: "deprecated unconfined", ctrPath: "unconfined", pod: rd, want: "none"},
		{name: "profile field wins over the path", ctr: unconfined, ctrPath: "runtime/default", want: "none"},
		{name: "privileged ignores profiles", privileged: true, ctr: local("/var/lib/kubelet/seccomp/block-mkdir.json"), pod: rd, want: "none"},
		{name: "relative localhost path", ctr: local("profiles/x.json"), err: invalid, mention: "profiles/x.json"},
		{name: "missing localhost file", ctr: local("/nope/x.json"), err: invalid, mention: "/nope/x.json"},
		{name: "unknown field in the file", ctr: local("/profiles/typo.json"), err: invalid, mention: "syscall"},
		{name: "unknown deprecated path", ctrPath: "foo/bar", err: invalid, mention: "foo/bar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			in.ReadFile = readFile
			sc := in.Config.Linux.SecurityContext
			sc.Seccomp, sc.SeccompProfilePath, sc.Privileged = tc.ctr, tc.ctrPath, tc.privileged
			psc := in.Sandbox.Linux.SecurityContext
			psc.Seccomp, psc.SeccompProfilePath, psc.Privileged = tc.pod, tc.podPath, tc.privileged
			s, err := Container(in)
			checkErr(t, err, tc.err, tc.mention)
			if err != nil {
				return
			}
			got := s.Linux.Seccomp
			switch tc.want {
			case "none":
				if got != nil {
					t.Fatalf("seccomp = %+v, want none", got)
				}
			case "default":
				if got == nil || got.DefaultAction != specs.ActErrno || !allows(got, "read") {
					t.Fatalf("seccomp = %+v, want RuntimeDefault", got)
				}
			case "local":
				if got == nil || got.DefaultAction != specs.ActAllow || got.Syscalls[0].Names[1] != "mkdirat" || *got.Syscalls[0].ErrnoRet != 18 {
					t.Fatalf("seccomp = %+v, want the block-mkdir profile", got)
				}
				// sethostname applies (no CAP_SYS_ADMIN); chroot does not
				// (it needs CAP_SYS_ADMIN); acct is for s390x only.
				n := names(got)
				if !slices.Contains(n, "sethostname") || slices.Contains(n, "chroot") || slices.Contains(n, "acct") {
					t.Fatalf("rules kept: %v", n)
				}
				if len(got.Architectures) != 3 {
					t.Fatalf("architectures = %v", got.Architectures)
				}
			}
		})
	}
}

// RuntimeDefault follows the container's capabilities: without
// CAP_SYS_ADMIN no mount, unshare, setns, namespace-making clone; with it
// all of those.
func TestSeccompDefaultCapabilities(t *testing.T) {
	in := baseInput()
	in.Config.Linux.SecurityContext.Seccomp = &criapi.SecurityProfile{}
	s, err := Container(in)
	checkErr(t, err, ok)
	p := s.Linux.Seccomp
	for _, name := range []string{"mount", "unshare", "setns", "keyctl", "add_key", "io_uring_setup", "clone", "clone3", "bpf", "reboot"} {
		if allows(p, name) {
			t.Errorf("default profile allows %s unconditionally", name)
		}
	}
	// clone only without namespace flags; clone3 ENOSYS; chroot is held
	// (CAP_SYS_CHROOT is a default capability).
	in.Config.Linux.SecurityContext.Capabilities = &criapi.Capability{AddCapabilities: []string{"SYS_ADMIN"}, DropCapabilities: []string{"SYS_CHROOT"}}
	s, err = Container(in)
	checkErr(t, err, ok)
	q := s.Linux.Seccomp
	for _, name := range []string{"mount", "unshare", "setns", "clone", "clone3", "sethostname"} {
		if !allows(q, name) {
			t.Errorf("with CAP_SYS_ADMIN, default profile does not allow %s", name)
		}
	}
	if allows(q, "chroot") || !allows(p, "chroot") {
		t.Errorf("chroot must follow CAP_SYS_CHROOT")
	}
	var cloneRule, clone3Rule *specs.LinuxSyscall
	for i, sc := range p.Syscalls {
		if slices.Contains(sc.Names, "clone") {
			cloneRule = &p.Syscalls[i]
		}
		if slices.Contains(sc.Names, "clone3") {
			clone3Rule = &p.Syscalls[i]
		}
	}
	if cloneRule == nil || len(cloneRule.Args) != 1 || cloneRule.Args[0].Op != specs.OpMaskedEqual || cloneRule.Args[0].Value != newNamespaceFlags {
		t.Errorf("clone rule = %+v, want masked on the namespace flags", cloneRule)
	}
	if clone3Rule == nil || clone3Rule.Action != specs.ActErrno || *clone3Rule.ErrnoRet != 38 {
		t.Errorf("clone3 rule = %+v, want ENOSYS", clone3Rule)
	}
	// AF_VSOCK is refused on the family's low 32 bits (the kernel's int),
	// before socket is allowed; name_to_handle_at needs CAP_SYS_ADMIN, as
	// in containerd's profile.
	var socketRules []specs.LinuxSyscall
	for _, sc := range p.Syscalls {
		if slices.Contains(sc.Names, "socket") {
			socketRules = append(socketRules, sc)
		}
	}
	if len(socketRules) != 2 || socketRules[0].Action != specs.ActErrno || len(socketRules[0].Args) != 1 ||
		socketRules[0].Args[0] != (specs.LinuxSeccompArg{Index: 0, Value: 0xffffffff, ValueTwo: 40, Op: specs.OpMaskedEqual}) ||
		socketRules[1].Action != specs.ActAllow || len(socketRules[1].Args) != 0 {
		t.Errorf("socket rules = %+v, want the masked AF_VSOCK refusal, then allow", socketRules)
	}
	if allows(p, "name_to_handle_at") || !allows(q, "name_to_handle_at") {
		t.Errorf("name_to_handle_at must follow CAP_SYS_ADMIN")
	}
	// Both compile, within the kernel's instruction limit.
	for _, prof := range []*specs.LinuxSeccomp{p, q} {
		f, err := bpf.Compile(prof)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d instructions, warnings %q", len(f.Program), f.Warnings)
	}
}

func TestSeccompRefRoundTrip(t *testing.T) {
	for _, ref := range []string{"", "unconfined", "runtime/default", "localhost//a/b.json"} {
		if got := SeccompRef(SeccompProfile(ref), ""); got != ref {
			t.Errorf("round trip of %q gave %q", ref, got)
		}
	}
	if got := SeccompRef(nil, "localhost//x"); got != "localhost//x" {
		t.Errorf("path form kept: %q", got)
	}
	for ref, want := range map[string]errKind{"": ok, "unconfined": ok, "runtime/default": ok, "docker/default": ok,
		"localhost//a/b.json": ok, "localhost/a/b.json": invalid, "default": invalid} {
		checkErr(t, CheckSeccompRef(ref), want, strings.TrimPrefix(ref, "localhost/"))
	}
}
