package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// DNSConfig is the pod's DNS configuration. All empty means the host's
// /etc/resolv.conf, as the kubelet's default ("Default" DNS policy) has it.
type DNSConfig struct {
	Servers  []string
	Searches []string
	Options  []string
}

// Empty reports whether no DNS setting was given.
func (d DNSConfig) Empty() bool {
	return len(d.Servers) == 0 && len(d.Searches) == 0 && len(d.Options) == 0
}

// HostAlias is one extra /etc/hosts line: an address and its names.
type HostAlias struct {
	IP        string
	Hostnames []string
}

// Limits of resolv.conf as glibc reads it, and as kubelet enforces them
// (pkg/apis/core/validation: MaxDNSSearchPaths, MaxDNSSearchListChars).
const (
	maxDNSSearches     = 32
	maxDNSSearchChars  = 2048
	maxHostnameLen     = 64 // HOST_NAME_MAX: sethostname(2) refuses more
	maxLabelLen        = 63
	defaultShmSize     = 64 << 20
	hostsHeader        = "# Kubernetes-managed hosts file.\n"
	hostAliasesComment = "# Entries added by HostAliases.\n"
)

// ValidateHostname checks name as an RFC 1123 host name: dot-separated
// labels of letters, digits and hyphens, neither starting nor ending with a
// hyphen, each at most 63 characters, at most 64 in all (the kernel's
// limit for sethostname). One trailing dot (an absolute name) is allowed:
// the kubelet makes "<pod>.<subdomain>.<ns>.svc." for setHostnameAsFQDN
// when its cluster domain is empty.
func ValidateHostname(name string) error {
	if name == "" || len(name) > maxHostnameLen {
		return invalidf("hostname %q: must be 1 to %d characters", name, maxHostnameLen)
	}
	labels := strings.TrimSuffix(name, ".")
	if labels == "" {
		return invalidf("hostname %q: no label", name)
	}
	for label := range strings.SplitSeq(labels, ".") {
		if !validLabel(label) {
			return invalidf("hostname %q: label %q is not an RFC 1123 label", name, label)
		}
	}
	return nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > maxLabelLen || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range []byte(l) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateDNS checks that servers are IP addresses without a zone,
// searches are domain names within glibc's limits and options are "name"
// or "name:value" (numeric for ndots, timeout and attempts), so nothing
// given can add a line to resolv.conf.
func ValidateDNS(d DNSConfig) error {
	for _, s := range d.Servers {
		if err := validIP(s); err != nil {
			return invalidf("dns server %q: %w", s, err)
		}
	}
	if len(d.Searches) > maxDNSSearches {
		return invalidf("dns searches: %d given, at most %d", len(d.Searches), maxDNSSearches)
	}
	if n := len(strings.Join(d.Searches, " ")); n > maxDNSSearchChars {
		return invalidf("dns searches: %d characters, at most %d", n, maxDNSSearchChars)
	}
	for _, s := range d.Searches {
		if err := ValidateHostname(strings.TrimSuffix(s, ".")); err != nil && s != "." {
			return invalidf("dns search %q: not a domain name", s)
		}
	}
	for _, o := range d.Options {
		if err := validDNSOption(o); err != nil {
			return err
		}
	}
	return nil
}

func validDNSOption(o string) error {
	name, value, hasValue := strings.Cut(o, ":")
	if name == "" || strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return invalidf("dns option %q: malformed name", o)
	}
	if !hasValue {
		return nil
	}
	if value == "" || strings.IndexFunc(value, func(r rune) bool { return r == ':' || unsafeRune(r) }) >= 0 {
		return invalidf("dns option %q: malformed value", o)
	}
	switch name {
	case "ndots", "timeout", "attempts":
		if n, err := strconv.Atoi(value); err != nil || n < 0 {
			return invalidf("dns option %q: %s must be a non-negative integer", o, name)
		}
	}
	return nil
}

// validIP checks s as an IP address for a resolv.conf or hosts line.
// netip.ParseAddr accepts an IPv6 zone of any bytes ("fe80::1%x\nnameserver
// 6.6.6.6" parses), and a zone would be written into the file verbatim: a
// newline in it adds lines. Kubernetes validation (ParseIPSloppy) takes no
// zone either, so none is allowed.
func validIP(s string) error {
	if strings.IndexFunc(s, unsafeRune) >= 0 {
		return errors.New("contains a control or space character")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return errors.New("not an IP address")
	}
	if a.Zone() != "" {
		return errors.New("an IPv6 zone is not allowed")
	}
	return nil
}

// unsafeRune reports the characters that may not appear inside one word of
// resolv.conf or hosts: control characters (a newline starts a line) and
// spaces of any kind (they separate words).
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError
}

// ValidateHostAliases checks that every alias has an IP address and host
// names that are RFC 1123 names.
func ValidateHostAliases(aliases []HostAlias) error {
	for _, a := range aliases {
		if err := validIP(a.IP); err != nil {
			return invalidf("host alias %q: %w", a.IP, err)
		}
		for _, h := range a.Hostnames {
			if err := ValidateHostname(h); err != nil {
				return invalidf("host alias %s: %w", a.IP, err)
			}
		}
	}
	return nil
}

// HostsFile returns the pod's /etc/hosts in the kubelet's format: the
// localhost lines, the pod's hostname on each of its IPs, then the host
// aliases.
func HostsFile(hostname string, ips []string, aliases []HostAlias) []byte {
	var b bytes.Buffer
	b.WriteString(hostsHeader)
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	writeAliases(&b, aliases)
	return b.Bytes()
}

// HostNetworkHostsFile returns the node's hosts file (hostsPath, normally
// /etc/hosts) with the host aliases appended, as the kubelet does for pods
// on the host's network.
func HostNetworkHostsFile(hostsPath string, aliases []HostAlias) ([]byte, error) {
	data, err := os.ReadFile(hostsPath)
	if err != nil {
		return nil, fmt.Errorf("read host's hosts file: %w", err)
	}
	b := bytes.NewBuffer(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		b.WriteByte('\n')
	}
	writeAliases(b, aliases)
	return b.Bytes(), nil
}

func writeAliases(b *bytes.Buffer, aliases []HostAlias) {
	if len(aliases) == 0 {
		return
	}
	b.WriteString(hostAliasesComment)
	for _, a := range aliases {
		fmt.Fprintf(b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
}

// ResolvConf returns the pod's resolv.conf: the host's (hostResolv,
// normally /etc/resolv.conf) when d is empty, else one built from d.
func ResolvConf(d DNSConfig, hostResolv string) ([]byte, error) {
	if d.Empty() {
		data, err := os.ReadFile(hostResolv)
		if err != nil {
			return nil, fmt.Errorf("read host's resolv.conf: %w", err)
		}
		return data, nil
	}
	var b bytes.Buffer
	if len(d.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.Searches, " "))
	}
	for _, s := range d.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.Options, " "))
	}
	return b.Bytes(), nil
}

// writeFile writes one of the pod's files, world-readable: containers
// bind-mount it and may run as any user. It is made in the pod's fresh
// directory under the state dir and nothing reads it before the pod is
// ready, so it is written in place (no temp file and rename), and not
// durably (a reboot empties the state dir). A daemon killed mid-write
// leaves the pod CREATING, which its restart makes NOTREADY.
func writeFile(path string, data []byte) (retErr error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err := f.Close(); err != nil && retErr == nil {
			retErr = fmt.Errorf("write %s: %w", path, err)
		}
		if retErr != nil {
			_ = os.Remove(path)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The daemon's umask may have narrowed the mode.
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// MountShm mounts a tmpfs of size bytes at path (created if missing) for
// the pod's /dev/shm: mode 1777 like /dev/shm, and nosuid, nodev, noexec.
// The size is a limit, not a reservation: pages are used as written.
func MountShm(path string, size int64) error {
	if size <= 0 {
		return invalidf("shm size %d: must be positive", size)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("mount shm: %w", err)
	}
	data := "mode=1777,size=" + strconv.FormatInt(size, 10)
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
		return fmt.Errorf("mount shm tmpfs at %s (%s): %w", path, data, err)
	}
	return nil
}

// UnmountShm unmounts the pod's shm tmpfs (every mount stacked at path)
// and removes the directory. A path that is not mounted, or does not
// exist, is not an error.
func UnmountShm(path string) error {
	for range 8 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return fmt.Errorf("unmount shm %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove shm %s: %w", path, err)
	}
	return nil
}
