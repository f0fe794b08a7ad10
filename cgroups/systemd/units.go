package systemd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	sd "github.com/coreos/go-systemd/v22/dbus"

	"github.com/crib-runtime/crib/cgroups"
)

// DefaultTimeout bounds each call to systemd, the wait for its job
// included: runc waits as long for a new unit. A systemd that hangs fails
// the CRI call (Unavailable) instead of holding it.
const DefaultTimeout = 30 * time.Second

// Files is the part of cgroups.Manager that Units writes through: crib's
// own cgroupfs writes, which stay the cgroup's (limits, updates, stats,
// OOM and removal all work on the files as under cgroupfs).
type Files interface {
	Update(path string, r *cgroups.Resources) error
	Mode() cgroups.Mode
}

// Units hands the cgroups crib makes to systemd: each becomes a transient
// scope (or, for the slices crib had to make, is stopped with the pod),
// so that systemd, which owns the cgroup tree of a systemd host, knows
// them and neither reuses their names nor moves or resets them. It is
// the daemon's: one connection per node, not one per shim.
type Units struct {
	files Files
	v2    bool
	conn  conn
	// Timeout bounds each call (DefaultTimeout when 0). Set before use.
	Timeout time.Duration
	// Root is crib's root slice's cgroup (cgroups.Paths.Parent("")), in
	// which, as in the kubelet's kubepods slices, MayCreate lets pods
	// make slices. Empty means cgroups.DefaultSlice's. Set before use.
	Root string
	// proc is where /proc/<pid>/cgroup is read (tests point it elsewhere).
	proc string
}

// New returns Units for a host whose cgroups files drives, talking to
// systemd through what dial connects (DialSystemd). Nothing is dialled
// before the first call.
func New(files Files, dial Dialer) *Units {
	return &Units{files: files, v2: files.Mode() == cgroups.ModeUnified, conn: conn{dial: dial}, proc: "/proc"}
}

// Connect dials now and returns systemd's major version (0: unknown), so
// that a daemon that cannot reach systemd says so when it starts. A
// daemon outside systemd's pid namespace is refused: the pids crib gives
// systemd (StartTransientUnit's PIDs) would name other processes there,
// which systemd would move into crib's scopes, and crib would kill with
// them.
func (u *Units) Connect(ctx context.Context) (int, error) {
	if err := u.samePIDNamespace(); err != nil {
		return 0, err
	}
	version := 0
	err := u.call(ctx, func(_ context.Context, _ Bus, v int) error { version = v; return nil })
	return version, err
}

// samePIDNamespace checks that crib and systemd (pid 1) share a pid
// namespace. It compares the NSpid lines of their /proc status, which
// list a process's pid in each namespace from /proc's down to its own:
// pid 1 is /proc's namespace's init, one entry, so crib is in that
// namespace when it has one entry too. Reading /proc/1/ns/pid would say
// the same, but needs ptrace access to pid 1, which a confined root lacks.
func (u *Units) samePIDNamespace() error {
	self, err := nsPIDs(filepath.Join(u.proc, "self/status"))
	if err != nil {
		return fmt.Errorf("check crib's pid namespace: %w", err)
	}
	pid1, err := nsPIDs(filepath.Join(u.proc, "1/status"))
	if err != nil {
		return fmt.Errorf("check systemd's pid namespace: %w", err)
	}
	if len(self) != len(pid1) {
		return fmt.Errorf("crib runs in a pid namespace below that of pid 1, systemd (crib's pids %s, levels apart): systemd would read crib's pids as its own, other processes; run crib in systemd's pid namespace, or with cgroup_driver = %q: %w",
			strings.Join(self, " "), cgroups.DriverCgroupfs, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// nsPIDs returns the fields of the NSpid line of a /proc status file.
func nsPIDs(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			return strings.Fields(v), nil
		}
	}
	return nil, fmt.Errorf("%s has no NSpid line: %w", file, errdefs.ErrFailedPrecondition)
}

// Close closes the connection.
func (u *Units) Close() { u.conn.close() }

// Adopt makes cgroup (a scope's path, cgroups.Paths.Leaf) the scope unit
// systemd would make for it, holding pid, which crib started there and
// holds before it runs anything of its own: the process is born in its
// cgroup as under cgroupfs, and systemd takes over the cgroup it finds
// (a scope's cgroup that exists is used as it is, and moving a process
// into the cgroup it is in changes nothing). Adopt returns once systemd's
// job is done and both systemd and the kernel place pid there; then r,
// which systemd was given as properties and wrote in its own spelling,
// is written again by crib. On failure the caller removes the scope
// (Release) with the process.
func (u *Units) Adopt(ctx context.Context, cgroup string, pid int, r *cgroups.Resources) error {
	scope, slice, err := cgroups.ScopeOf(cgroup)
	if err != nil {
		return fmt.Errorf("adopt pid %d: %w", pid, err)
	}
	if pid <= 0 {
		return fmt.Errorf("adopt into scope %s: pid %d: %w", scope, pid, errdefs.ErrInvalidArgument)
	}
	// systemd moves whatever process has pid now into the scope, and
	// crib kills the scope's processes on removal: the pid must be crib's
	// process, which is in the cgroup crib made for it, before systemd is
	// told of it. Had crib's process died and its pid gone to another,
	// the check after the start would pass on the moved stranger.
	if err := u.placed(pid, cgroup); err != nil {
		return fmt.Errorf("start scope %s for pid %d: %w", scope, pid, err)
	}
	err = u.call(ctx, func(ctx context.Context, b Bus, version int) error {
		props, err := scopeProperties(scope, slice, pid, r, u.v2, version)
		if err != nil {
			return err
		}
		if err := u.start(ctx, b, scope, props, pid); err != nil {
			return err
		}
		// systemd's own word that pid is in its unit, not only the
		// kernel's (below) that it is in the cgroup.
		got, err := b.GetUnitNameByPID(ctx, uint32(pid))
		if err == nil && got != scope {
			err = fmt.Errorf("systemd has pid %d in unit %s", pid, got)
		}
		return err
	})
	if err == nil {
		err = u.placed(pid, cgroup)
	}
	if err != nil {
		return fmt.Errorf("start scope %s for pid %d: %w", scope, pid, err)
	}
	if r != nil {
		if err := u.files.Update(cgroup, r); err != nil {
			return fmt.Errorf("start scope %s: write crib's resources over systemd's: %w", scope, err)
		}
	}
	return nil
}

// start starts the transient scope and waits for its job. A unit of that
// name that exists already is either this very adoption done before (a
// start taken up after a daemon restart: systemd has pid in it) or a
// failed leftover, which is reset and the start tried once more, as runc
// does. systemd's word decides, not the kernel's: Adopt checked that pid
// is in the cgroup already.
func (u *Units) start(ctx context.Context, b Bus, scope string, props []sd.Property, pid int) error {
	for retried := false; ; retried = true {
		ch := make(chan string, 1)
		_, err := b.StartTransientUnitContext(ctx, scope, modeReplace, props, ch)
		if err == nil {
			if err = awaitJob(ctx, ch); err != nil && ctx.Err() == nil {
				// A failed unit stays loaded, holding its name.
				_ = b.ResetFailedUnitContext(ctx, scope)
			}
			return err
		}
		if !dbusError(err, errUnitExists) || retried {
			return err
		}
		if got, err := b.GetUnitNameByPID(ctx, uint32(pid)); err == nil && got == scope {
			return nil
		}
		if err := b.ResetFailedUnitContext(ctx, scope); err != nil && !dbusError(err, errNoSuchUnit) {
			return err
		}
	}
}

// Update gives systemd r for the unit of cgroup before crib writes r to
// the files itself (runc's order): systemd writes its spelling of r (a
// quota rounded to 10 ms), and crib's, written after, is exact. A unit
// that does not exist (a container not started yet) is NotFound.
func (u *Units) Update(ctx context.Context, cgroup string, r *cgroups.Resources) error {
	unit, ok := cgroups.Unit(cgroup)
	if !ok {
		return fmt.Errorf("update unit of cgroup %s: not a systemd unit's cgroup: %w", cgroup, errdefs.ErrInvalidArgument)
	}
	err := u.call(ctx, func(ctx context.Context, b Bus, version int) error {
		props, err := resourceProperties(r, u.v2, version)
		if err != nil || len(props) == 0 {
			return err
		}
		return b.SetUnitPropertiesContext(ctx, unit, true, props...)
	})
	if err != nil {
		return fmt.Errorf("update unit %s: %w", unit, err)
	}
	return nil
}

// MayCreate says whether crib may make cgroup, a missing parent of a
// pod's, and so stop its unit with the pod: only where crib and the
// kubelet alone make slices (cgroups.CribSlice). A slice elsewhere may
// hold others' units by the time the pod goes (logind's sessions in
// user-<uid>.slice), and stopping a slice stops everything in it; such
// a parent is FailedPrecondition, for whoever owns it to make first. A
// cgroup that is no unit's is crib's to make.
func (u *Units) MayCreate(cgroup string) error {
	unit, ok := cgroups.Unit(cgroup)
	if !ok || !strings.HasSuffix(unit, ".slice") {
		return nil
	}
	root := u.Root
	if root == "" {
		root = "/" + cgroups.DefaultSlice
	}
	if cgroups.CribSlice(cgroup, root) {
		return nil
	}
	return fmt.Errorf("cgroup parent slice %s does not exist, and crib makes slices only in %s and in kubepods slices (another manager may fill %s later, and crib would stop it with the pod): start it first (systemctl start %s) or use a slice in %s: %w",
		unit, root, unit, unit, root, errdefs.ErrFailedPrecondition)
}

// Release stops the unit whose cgroup is cgroup and clears it from
// systemd's memory (a failed unit stays loaded until reset). Call it once
// crib has killed what ran there and removed the cgroup: a stop kills only
// what is left, so it does not wait out a stop timeout. A unit systemd
// does not know, or a cgroup that is no unit's (a cgroupfs directory), is
// no error.
func (u *Units) Release(ctx context.Context, cgroup string) error {
	unit, ok := cgroups.Unit(cgroup)
	if !ok {
		return nil
	}
	err := u.call(ctx, func(ctx context.Context, b Bus, _ int) error {
		ch := make(chan string, 1)
		_, err := b.StopUnitContext(ctx, unit, modeReplace, ch)
		switch {
		case dbusError(err, errNoSuchUnit):
		case err != nil:
			return err
		default:
			// Any result leaves a unit that is stopped or failed;
			// the reset below clears the latter. Only no result
			// (the deadline) is a failure.
			if err := awaitJob(ctx, ch); err != nil && ctx.Err() != nil {
				return err
			}
		}
		if err := b.ResetFailedUnitContext(ctx, unit); err != nil && !dbusError(err, errNoSuchUnit) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stop unit %s: %w", unit, err)
	}
	return nil
}

// call runs f with the connection under the timeout, once more on a new
// connection if the first was lost.
func (u *Units) call(ctx context.Context, f func(ctx context.Context, b Bus, version int) error) error {
	timeout := u.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	for retried := false; ; retried = true {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		b, version, err := u.conn.get(cctx)
		if err == nil {
			err = f(cctx, b, version)
		}
		cancel()
		if err != nil && b != nil && !retried && lost(b, err) {
			u.conn.drop(b)
			continue
		}
		return classify(err)
	}
}

// placed checks that the kernel has pid in cgroup in the hierarchy systemd
// tracks processes in: name=systemd on v1 (crib's stage 0 put it there
// too), the unified hierarchy on v2. The path may carry a prefix where
// the daemon's cgroup namespace is its container's parent's (a node
// container without a cgroup namespace: "/docker/<id>/kubepods.slice/…").
func (u *Units) placed(pid int, cgroup string) error {
	file := filepath.Join(u.proc, strconv.Itoa(pid), "cgroup")
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("check the cgroup of pid %d: %w", pid, err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// hierarchy-ID:controller-list:cgroup-path (cgroups(7))
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		v1 := strings.Contains(","+parts[1]+",", ",name=systemd,")
		if !(v1 && !u.v2) && !(parts[0] == "0" && parts[1] == "" && u.v2) {
			continue
		}
		if got := parts[2]; got != cgroup && !strings.HasSuffix(got, cgroup) {
			return fmt.Errorf("pid %d is in cgroup %s, not %s: %w", pid, got, cgroup, errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("check the cgroup of pid %d: %w", pid, err)
	}
	return fmt.Errorf("check the cgroup of pid %d: %s names no hierarchy of systemd's: %w", pid, file, errdefs.ErrFailedPrecondition)
}
