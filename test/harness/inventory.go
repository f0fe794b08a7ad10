package harness

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Inventory is what a daemon's world holds, per category: each item and
// how many times it occurs. Items name what they are (a mount point, a
// cgroup path, a process's command line, an fd's target), so a difference
// says what leaked.
type Inventory map[string]map[string]int

// Scope says what an inventory counts: the env (its directories and
// network namespace), the daemon serving it now, the test's cgroup parent
// and the registry whose idle pull connection is not the pods'.
type Scope struct {
	Env      *Env
	Daemon   *Daemon
	Cgroup   string
	Registry string
}

// HostMounts is the category of every mount point of the host. Other
// tests' daemons and pods change it: compare the rest (WithoutHostMounts).
const HostMounts = "mounts (host, total)"

// Take counts mounts, namespace pins, cgroups below the test's parent,
// processes, the daemon's fds and goroutines, links in the env's network
// namespace, IPAM files and the files of the state and root dirs (images
// excluded).
func Take(t testing.TB, s Scope) Inventory {
	t.Helper()
	inv := Inventory{}
	add := func(cat, item string) {
		if inv[cat] == nil {
			inv[cat] = map[string]int{}
		}
		inv[cat][item]++
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var cgroupRoots []string
	for _, line := range strings.Split(strings.TrimSpace(string(mountinfo)), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		point, fstype := f[4], f[sep+1]
		add(HostMounts, point+" "+fstype)
		if strings.Contains(line, s.Env.Dir) {
			add("mounts (env dir)", point+" "+fstype)
			if fstype == "nsfs" {
				add("namespace pins (nsfs)", point)
			}
		}
		if fstype == "cgroup" || fstype == "cgroup2" {
			cgroupRoots = append(cgroupRoots, point)
		}
	}
	for _, root := range cgroupRoots {
		_ = filepath.WalkDir(filepath.Join(root, s.Cgroup), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				add("cgroups (test parent)", p)
			}
			return nil
		})
	}
	s.countProcs(add)
	s.countDaemon(t, add)
	out, err := exec.Command("ip", "-n", s.Env.Netns, "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s link: %v\n%s", s.Env.Netns, err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			add("links (test netns)", f[1])
		}
	}
	walkFiles(filepath.Join(s.Env.Dir, "ipam"), "", func(rel string) { add("IPAM files (host-local)", rel) })
	walkFiles(s.Env.State, "", func(rel string) { add("state dir entries", shimGroup.ReplaceAllString(rel, "grp-*")) })
	walkFiles(s.Env.Root, "images", func(rel string) { add("root dir entries", rel) })
	return inv
}

// countDaemon counts the daemon's open fds and its goroutines.
func (s Scope) countDaemon(t testing.TB, add func(cat, item string)) {
	t.Helper()
	daemon := s.Daemon.Pid()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", daemon))
	if err != nil {
		t.Fatalf("daemon fds: %v", err)
	}
	socks := sockets(daemon)
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", daemon, fd.Name()))
		if m := inode.FindStringSubmatch(target); m != nil && strings.HasPrefix(target, "socket:") {
			target = "socket: " + socks[m[1]]
			// The image pull's HTTP client keeps its connection to the
			// registry until net/http's idle timeout (90 s) closes it:
			// that is the pull's, not the pods'.
			if target == "socket: tcp to "+s.Registry {
				continue
			}
		}
		add("daemon fds", inode.ReplaceAllString(target, "[]"))
	}
	gs, err := s.Daemon.Goroutines()
	if err != nil {
		t.Fatalf("daemon goroutines: %v", err)
	}
	for entry, n := range gs {
		// The pull's idle connection to the registry, as with its fd;
		// goroutines too new or too old to have a stack; the read-ahead of
		// the debug request being served, there or not by timing (its
		// connection's own goroutine is counted).
		switch entry {
		case "net/http.(*persistConn).readLoop", "net/http.(*persistConn).writeLoop", NoFrames, "net/http.(*connReader).backgroundRead":
			continue
		}
		for range n {
			add("daemon goroutines", entry)
		}
	}
}

// countProcs counts the processes the test is responsible for: its own
// children, the daemon's, every process whose command line or executable
// names the env dir (shims, pause processes started from the sealed
// binary) and every process in the test's cgroups (containers). The
// daemon is named by its role, not its pid, so that inventories taken
// across a daemon restart compare. Zombies are counted on their own.
func (s Scope) countProcs(add func(cat, item string)) {
	entries, _ := os.ReadDir("/proc")
	me, daemon := os.Getpid(), s.Daemon.Pid()
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == me {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		state := f[0]
		ppid, _ := strconv.Atoi(f[1])
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		cmd := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		mine := ppid == me || ppid == daemon || pid == daemon ||
			strings.Contains(cmd, s.Env.Dir) || strings.Contains(exe, s.Env.Dir) || strings.Contains(string(cg), s.Cgroup+"/")
		if !mine {
			continue
		}
		item := fmt.Sprintf("%d %s", pid, cmd)
		switch {
		case pid == daemon:
			item = "daemon: " + cmd
		case shimGroup.MatchString(cmd):
			// The shim process the daemon keeps for the next pod may be
			// another one after a while: counted, not named.
			item = "shim process: " + shimGroup.ReplaceAllString(cmd, "grp-*")
		}
		add("processes", item)
		if state == "Z" {
			add("zombies", fmt.Sprintf("%d (parent %d)", pid, ppid))
		}
	}
}

// WithoutHostMounts is the inventory without the host's mount table.
func (inv Inventory) WithoutHostMounts() Inventory {
	out := maps.Clone(inv)
	delete(out, HostMounts)
	return out
}

// Diff lists, per category, the items whose counts differ from inv to
// after ("" when none): + for more after, - for fewer.
func (inv Inventory) Diff(after Inventory) string {
	var out strings.Builder
	for _, cat := range sortedKeys(inv, after) {
		for _, item := range sortedKeys(inv[cat], after[cat]) {
			if d := after[cat][item] - inv[cat][item]; d != 0 {
				fmt.Fprintf(&out, "  %s: %+d %s\n", cat, d, item)
			}
		}
	}
	return out.String()
}

// Log writes each category's totals before (inv) and after.
func (inv Inventory) Log(t testing.TB, after Inventory) {
	t.Helper()
	for _, k := range sortedKeys(inv, after) {
		t.Logf("%-28s before %5d  after %5d", k, total(inv[k]), total(after[k]))
	}
}

// Compare fails the test with what after holds more or less than inv,
// the host's mount table aside (other tests change it: a difference there
// is only logged; what names the env's directory is counted apart).
func (inv Inventory) Compare(t testing.TB, after Inventory, what string) {
	t.Helper()
	if d := (Inventory{HostMounts: inv[HostMounts]}).Diff(Inventory{HostMounts: after[HostMounts]}); d != "" {
		t.Logf("the host's mount table changed (not necessarily this test):\n%s", d)
	}
	if d := inv.WithoutHostMounts().Diff(after.WithoutHostMounts()); d != "" {
		t.Errorf("%s, left behind (+) or gone (-):\n%s", what, d)
	}
}

// Settle takes inventories until one matches want (host mounts aside) or
// within has passed, and returns the last: shims exit and the kernel
// tears namespaces down after the RPCs return.
func Settle(t testing.TB, s Scope, want Inventory, within time.Duration) Inventory {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := Take(t, s)
		if want.WithoutHostMounts().Diff(got.WithoutHostMounts()) == "" || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sortedKeys[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// inode matches the number in "socket:[1234]", "pipe:[99]".
var inode = regexp.MustCompile(`\[(\d+)\]`)

// shimGroup is a shim process's directory name.
var shimGroup = regexp.MustCompile(`grp-[0-9a-f]+`)

// hexAddr decodes an IPv4 address of /proc/net/tcp ("0100007F:1F90" is
// 127.0.0.1:8080).
func hexAddr(s string) string {
	ip, port, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(ip, 16, 32)
	p, err2 := strconv.ParseUint(port, 16, 16)
	if !ok || err1 != nil || err2 != nil {
		return s
	}
	return fmt.Sprintf("%d.%d.%d.%d:%d", a&0xff, a>>8&0xff, a>>16&0xff, a>>24, p)
}

// sockets describes the sockets in pid's network namespace by inode
// ("unix /path", "tcp", "netlink"), so an fd diff says what kind leaked.
func sockets(pid int) map[string]string {
	out := map[string]string{}
	for _, tab := range []struct {
		file     string
		inodeCol int
		pathCol  int // unix only
	}{{"unix", 6, 7}, {"tcp", 9, -1}, {"tcp6", 9, -1}, {"udp", 9, -1}, {"udp6", 9, -1}, {"netlink", 9, -1}} {
		// The daemon's namespace, then the test's: a unix socket accepted
		// from a client in the host's namespace is listed there.
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, tab.file))
		own, _ := os.ReadFile("/proc/self/net/" + tab.file)
		lines := strings.Split(strings.TrimSpace(string(b))+"\n"+strings.TrimSpace(string(own)), "\n")
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) <= tab.inodeCol {
				continue
			}
			desc := tab.file
			if tab.pathCol >= 0 && len(f) > tab.pathCol {
				desc += " " + f[tab.pathCol]
			}
			if tab.file == "tcp" {
				desc += " to " + hexAddr(f[2])
			}
			out[f[tab.inodeCol]] = desc
		}
	}
	return out
}

// walkFiles calls fn with the path, relative to dir, of every entry below
// dir except the top-level entry named skip.
func walkFiles(dir, skip string, fn func(rel string)) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if skip != "" && (rel == skip) {
			return filepath.SkipDir
		}
		fn(rel)
		return nil
	})
}
