package initproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capNames maps the OCI spelling of every capability the kernel headers
// know to its number.
var capNames = map[string]int{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
	"CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_FOWNER": unix.CAP_FOWNER,
	"CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL,
	"CAP_SETGID": unix.CAP_SETGID, "CAP_SETUID": unix.CAP_SETUID,
	"CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE,
	"CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST,
	"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_NET_RAW": unix.CAP_NET_RAW,
	"CAP_IPC_LOCK": unix.CAP_IPC_LOCK, "CAP_IPC_OWNER": unix.CAP_IPC_OWNER,
	"CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"CAP_SYS_PACCT": unix.CAP_SYS_PACCT, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN,
	"CAP_SYS_BOOT": unix.CAP_SYS_BOOT, "CAP_SYS_NICE": unix.CAP_SYS_NICE,
	"CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_SYS_TIME": unix.CAP_SYS_TIME,
	"CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG, "CAP_MKNOD": unix.CAP_MKNOD,
	"CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "CAP_SETFCAP": unix.CAP_SETFCAP,
	"CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE, "CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN,
	"CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ,
	"CAP_PERFMON": unix.CAP_PERFMON, "CAP_BPF": unix.CAP_BPF,
	"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// lastCapability is the highest capability the running kernel knows.
func lastCapability() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return unix.CAP_LAST_CAP
}

// capSet is a set of capabilities as the kernel's 64-bit mask.
type capSet uint64

// capSets are the spec's five sets, parsed.
type capSets struct {
	bounding, effective, permitted, inheritable, ambient capSet
}

// parseCaps parses the spec's sets. An unknown name is an error (a typo
// must not silently drop a capability the workload needs, nor keep one);
// a known one the running kernel lacks is left out, as runc does, since
// no process can hold it anyway.
func parseCaps(c *specs.LinuxCapabilities, lastCap int) (capSets, error) {
	var out capSets
	for _, s := range []struct {
		names []string
		set   *capSet
	}{
		{c.Bounding, &out.bounding}, {c.Effective, &out.effective},
		{c.Permitted, &out.permitted}, {c.Inheritable, &out.inheritable},
		{c.Ambient, &out.ambient},
	} {
		for _, name := range s.names {
			n, ok := capNames[strings.ToUpper(name)]
			if !ok {
				return out, fmt.Errorf("unknown capability %q", name)
			}
			if n <= lastCap {
				*s.set |= 1 << n
			}
		}
	}
	return out, nil
}

// dropBounding removes from the bounding set every capability not in keep.
// It needs CAP_SETPCAP, so it runs before the switch to the user's uid.
func dropBounding(keep capSet, lastCap int) error {
	for n := 0; n <= lastCap; n++ {
		if keep&(1<<n) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", n, err)
		}
	}
	return nil
}

// applyCaps sets this thread's effective, permitted and inheritable sets
// with capset(2), then its ambient set. It runs after the switch to the
// user's uid (kept across it by PR_SET_KEEPCAPS), and on the thread that
// will execve: capabilities are per thread.
func applyCaps(c capSets) error {
	if err := capset(c); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// The kernel refuses an ambient capability that is not both permitted
	// and inheritable. runc warns and goes on, and `runc spec` writes such
	// specs (ambient without inheritable), so those are skipped, not fatal.
	raisable := c.ambient & c.permitted & c.inheritable
	for n := 0; n < 64; n++ {
		if raisable&(1<<n) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(n), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d: %w", n, err)
		}
	}
	return nil
}

// dropAsSetuid leaves this thread the capabilities that a change from
// root to another uid leaves without keepcaps: no effective, permitted or
// ambient capability, and the inheritable set as it was.
func dropAsSetuid() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	return applyCaps(capSets{inheritable: capSet(data[0].Inheritable) | capSet(data[1].Inheritable)<<32})
}

// capset sets this thread's effective, permitted and inheritable sets.
func capset(c capSets) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		data[i].Effective = uint32(c.effective >> (32 * i))
		data[i].Permitted = uint32(c.permitted >> (32 * i))
		data[i].Inheritable = uint32(c.inheritable >> (32 * i))
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
