package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/testutil"
)

func TestValidateHostname(t *testing.T) {
	for name, ok := range map[string]bool{
		"web-0": true, "a": true, "pod.example.com": true, "Web1": true,
		strings.Repeat("a", 63): true, strings.Repeat("a", 63) + ".b": false, // 65 > 64
		"": false, "-web": false, "web-": false, "we_b": false, "a..b": false, "web.": true, "a.b.svc.": true, ".": false, "web..": false,
		strings.Repeat("a", 64): false, "web 1": false, "web\n": false,
	} {
		err := ValidateHostname(name)
		if ok != (err == nil) {
			t.Errorf("ValidateHostname(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ValidateHostname(%q) = %v, not InvalidArgument", name, err)
		}
	}
}

func TestValidateDNS(t *testing.T) {
	for _, tc := range []struct {
		name string
		dns  DNSConfig
		ok   bool
	}{
		{"empty", DNSConfig{}, true},
		{"kubelet's", DNSConfig{Servers: []string{"10.96.0.10", "fd00::a"}, Searches: []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5", "edns0", "single-request-reopen", "timeout:2", "trust-ad"}}, true},
		{"rooted search", DNSConfig{Searches: []string{"example.com."}}, true},
		{"server not an ip", DNSConfig{Servers: []string{"dns.example.com"}}, false},
		{"newline in server", DNSConfig{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6"}}, false},
		{"space in search", DNSConfig{Searches: []string{"a b"}}, false},
		{"too many searches", DNSConfig{Searches: strings.Split(strings.Repeat("a,", 33)[:65], ",")}, false},
		{"option with space", DNSConfig{Options: []string{"ndots:5 rotate"}}, false},
		{"option empty value", DNSConfig{Options: []string{"ndots:"}}, false},
		{"option bad ndots", DNSConfig{Options: []string{"ndots:x"}}, false},
		{"option empty", DNSConfig{Options: []string{""}}, false},
		{"option newline", DNSConfig{Options: []string{"rotate\nnameserver"}}, false},
		// netip.ParseAddr takes any bytes as a zone: resolv.conf injection.
		{"server zone with newline", DNSConfig{Servers: []string{"fe80::1%x\nnameserver 6.6.6.6"}}, false},
		{"server zone", DNSConfig{Servers: []string{"fe80::1%eth0"}}, false},
		{"server trailing newline", DNSConfig{Servers: []string{"1.1.1.1\n"}}, false},
		{"server tab", DNSConfig{Servers: []string{"\t1.1.1.1"}}, false},
		{"search control", DNSConfig{Searches: []string{"a\x1bb"}}, false},
		{"search newline", DNSConfig{Searches: []string{"a\nnameserver 6.6.6.6"}}, false},
		{"option value vertical tab", DNSConfig{Options: []string{"ndots:5\vrotate"}}, false},
		{"option value form feed", DNSConfig{Options: []string{"foo:a\fb"}}, false},
		{"option value escape", DNSConfig{Options: []string{"foo:a\x1bb"}}, false},
		{"option value non-breaking space", DNSConfig{Options: []string{"foo:a\u00a0b"}}, false},
		{"option value invalid utf-8", DNSConfig{Options: []string{"foo:a\xffb"}}, false},
	} {
		err := ValidateDNS(tc.dns)
		if tc.ok != (err == nil) {
			t.Errorf("%s: ValidateDNS = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: ValidateDNS = %v, want InvalidArgument", tc.name, err)
		}
	}
	for server, want := range map[string]string{
		"fe80::1%x\nnameserver 6.6.6.6": `dns server "fe80::1%x\nnameserver 6.6.6.6": contains a control or space character`,
		"fe80::1%eth0":                  `dns server "fe80::1%eth0": an IPv6 zone is not allowed`,
	} {
		if err := ValidateDNS(DNSConfig{Servers: []string{server}}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateDNS(%q) = %v, want an error containing %s", server, err, want)
		}
	}
	if err := ValidateHostAliases([]HostAlias{{IP: "nope", Hostnames: []string{"a"}}}); err == nil {
		t.Error("alias with a bad IP accepted")
	}
	if err := ValidateHostAliases([]HostAlias{{IP: "fe80::1%x\n6.6.6.6", Hostnames: []string{"a"}}}); err == nil {
		t.Error("ValidateHostAliases accepted an IPv6 zone with a newline")
	}
	if err := ValidateHostAliases([]HostAlias{{IP: "1.2.3.4", Hostnames: []string{"a b"}}}); err == nil {
		t.Error("alias with a bad name accepted")
	}
}

const localhostLines = "# Kubernetes-managed hosts file.\n" +
	"127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"fe00::0\tip6-mcastprefix\n" +
	"fe00::1\tip6-allnodes\n" +
	"fe00::2\tip6-allrouters\n"

func TestHostsFile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ips      []string
		aliases  []HostAlias
		wantTail string
	}{
		{"no ips", nil, nil, ""},
		{"dual stack", []string{"10.88.0.5", "fd00::5"}, nil, "10.88.0.5\tweb-0\nfd00::5\tweb-0\n"},
		{"aliases", []string{"10.88.0.5"}, []HostAlias{{IP: "1.2.3.4", Hostnames: []string{"foo", "foo.local"}}, {IP: "::2", Hostnames: []string{"bar"}}},
			"10.88.0.5\tweb-0\n# Entries added by HostAliases.\n1.2.3.4\tfoo\tfoo.local\n::2\tbar\n"},
	} {
		if got, want := string(HostsFile("web-0", tc.ips, tc.aliases)), localhostLines+tc.wantTail; got != want {
			t.Errorf("%s: hosts =\n%s\nwant\n%s", tc.name, got, want)
		}
	}
	host := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(host, []byte("127.0.0.1 localhost\n192.168.1.2 node1"), 0o644)
	got, err := HostNetworkHostsFile(host, []HostAlias{{IP: "1.2.3.4", Hostnames: []string{"foo"}}})
	if want := "127.0.0.1 localhost\n192.168.1.2 node1\n# Entries added by HostAliases.\n1.2.3.4\tfoo\n"; err != nil || string(got) != want {
		t.Errorf("host network hosts = %q, %v; want %q", got, err, want)
	}
}

func TestResolvConf(t *testing.T) {
	host := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(host, []byte("nameserver 192.168.1.1\nsearch lan\n"), 0o644)
	for _, tc := range []struct {
		name string
		dns  DNSConfig
		want string
	}{
		{"empty copies the host's", DNSConfig{}, "nameserver 192.168.1.1\nsearch lan\n"},
		{"full", DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"ns.svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}},
			"search ns.svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"},
		{"servers only", DNSConfig{Servers: []string{"1.1.1.1", "8.8.8.8"}}, "nameserver 1.1.1.1\nnameserver 8.8.8.8\n"},
		{"options only", DNSConfig{Options: []string{"edns0", "rotate"}}, "options edns0 rotate\n"},
	} {
		got, err := ResolvConf(tc.dns, host)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: resolv.conf = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := ResolvConf(DNSConfig{}, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing host resolv.conf accepted")
	}
}

func TestShm(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	shm := filepath.Join(dir, "shm")
	const size = 32 << 20
	if err := MountShm(shm, size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { UnmountShm(shm) })
	var st unix.Statfs_t
	if err := unix.Statfs(shm, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.TMPFS_MAGIC || st.Blocks*uint64(st.Bsize) != size {
		t.Errorf("shm: type %#x, %d bytes; want tmpfs of %d", st.Type, st.Blocks*uint64(st.Bsize), size)
	}
	if st.Flags&unix.ST_NOSUID == 0 || st.Flags&unix.ST_NODEV == 0 || st.Flags&unix.ST_NOEXEC == 0 {
		t.Errorf("shm mount flags %#x lack nosuid, nodev or noexec", st.Flags)
	}
	fi, err := os.Stat(shm)
	if err != nil || fi.Mode()&os.ModePerm != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("shm mode %v, %v; want 1777", fi.Mode(), err)
	}
	if n := testutil.MountsUnder(t, dir); n != 1 {
		t.Errorf("mounts under %s = %d, want 1", dir, n)
	}
	if err := UnmountShm(shm); err != nil {
		t.Fatal(err)
	}
	if err := UnmountShm(shm); err != nil {
		t.Fatalf("second UnmountShm: %v", err)
	}
	if n := testutil.MountsUnder(t, dir); n != 0 {
		t.Errorf("mounts left under %s: %d", dir, n)
	}
	if _, err := os.Stat(shm); !os.IsNotExist(err) {
		t.Errorf("shm dir left: %v", err)
	}
	if err := MountShm(shm, 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("MountShm of size 0 = %v, want InvalidArgument", err)
	}
}
