package initproc

import (
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/lsm"
	"github.com/crib-runtime/crib/internal/ocihook"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// Step names reported in initmsg.Message.Step.
const (
	stepConfig      = "config"
	stepFds         = "inherited_fds"
	stepPropagation = "propagation"
	stepRootfs      = "rootfs"
	stepMount       = "mount"
	stepDevices     = "devices"
	stepPivotRoot   = "pivot_root"
	stepReadonly    = "readonly_paths"
	stepMasked      = "masked_paths"
	stepHostname    = "hostname"
	stepSysctl      = "sysctl"
	stepRlimit      = "rlimit"
	stepNoNewPrivs  = "no_new_privs"
	stepCaps        = "capabilities"
	stepUser        = "user"
	stepCwd         = "cwd"
	stepExec        = "exec"
	stepSeccomp     = "seccomp"
	stepTerminal    = "terminal"
	stepAppArmor    = "apparmor"
	stepSELinux     = "selinux"
	stepStart       = "start"
	stepHooks       = "hooks"
)

// stepError is a failure of one step of init, on one path. Its message is
// the wrapped error's, which already names the operation and the path.
type stepError struct {
	step, path string
	err        error
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// fail wraps err as a failure of step on path. An err that is already a
// stepError keeps its own (more precise) step and path. A nil err stays nil.
func fail(step, path string, err error) error {
	if err == nil {
		return nil
	}
	var se *stepError
	if errors.As(err, &se) {
		return err
	}
	return &stepError{step: step, path: path, err: err}
}

// errMessage turns an error into the Error message the launcher receives.
func errMessage(err error) initmsg.Message {
	msg := initmsg.Message{Type: initmsg.TypeError, Step: stepConfig, Error: err.Error()}
	var se *stepError
	if errors.As(err, &se) {
		msg.Step, msg.Path = se.step, se.path
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg.Errno = int(errno)
	}
	return msg
}

// Run is `crib init`: it reads the config from the init socket, sets up the
// container and execs its process. It returns only on failure (after
// reporting the error to the launcher).
func Run() error {
	// Credentials, capabilities and the no_new_privs bit that matter are
	// those of the thread that calls execve(2); keep every step on it. The
	// thread is never unlocked: on failure the process exits.
	goruntime.LockOSThread()

	pipe, err := initPipe()
	if err != nil {
		return err
	}
	// Before any path is touched: an fd inherited from the launcher is a
	// way out of the container's root (see cwd.go).
	if err := closeInheritedFds(int(pipe.Fd()), openLogPipe()); err != nil {
		return report(pipe, fail(stepFds, "", err))
	}
	var cfg initmsg.Config
	if err := initmsg.ReadConfig(pipe, &cfg); err != nil {
		return report(pipe, fail(stepConfig, "", fmt.Errorf("read init config: %w", err)))
	}
	proc, err := prepare(&cfg, pipe)
	if err != nil {
		return report(pipe, err)
	}
	if cfg.Spec.Process.Terminal {
		if err := setupConsole(pipe); err != nil {
			return report(pipe, err)
		}
	}
	if err := initmsg.Write(pipe, initmsg.Message{Type: initmsg.TypeReady}); err != nil {
		return err
	}
	var msg initmsg.Message
	if err := initmsg.Read(pipe, &msg); err != nil {
		if errors.Is(err, io.EOF) {
			// The launcher went away: nothing to report to.
			return fmt.Errorf("wait for start: launcher closed the init socket")
		}
		return report(pipe, fail(stepStart, "", fmt.Errorf("wait for start: %w", err)))
	}
	if msg.Type != initmsg.TypeStart {
		return report(pipe, fail(stepStart, "", fmt.Errorf("wait for start: unexpected message %q", msg.Type)))
	}
	if h := cfg.Hooks; h != nil && len(h.StartContainer) > 0 {
		// As the container's user, in its root and cwd, just before
		// execve, and as runc runs them: under the container's seccomp
		// filter, without the CAP_SYS_ADMIN kept only to load it. The
		// image names what runs at the hook's path.
		if err := proc.seccomp.load(); err != nil {
			return report(pipe, err)
		}
		if err := runHooks(ocihook.StartContainer, h.StartContainer, h.State, specs.StateCreated, ""); err != nil {
			return report(pipe, err)
		}
	}
	err = proc.exec()
	return report(pipe, fail(stepExec, proc.args[0], err))
}

// report sends err to the launcher and returns it.
func report(pipe *os.File, err error) error {
	if werr := initmsg.Write(pipe, errMessage(err)); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

// initPipe opens the init socket named by the environment and removes the
// variable so the user's process does not see it.
func initPipe() (*os.File, error) {
	s := os.Getenv(initmsg.EnvInitPipe)
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("init socket: bad %s=%q", initmsg.EnvInitPipe, s)
	}
	os.Unsetenv(initmsg.EnvInitPipe)
	// The fd stays open across the steps and closes at execve: the launcher
	// reads EOF exactly when the user's process replaced us.
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "initpipe"), nil
}

// prepare runs every step before Ready and returns the process to exec.
func prepare(cfg *initmsg.Config, pipe *os.File) (*process, error) {
	if err := validate(cfg); err != nil {
		return nil, err
	}
	// Before anything changed: a bad profile or program fails here.
	filter, err := seccompFilter(cfg)
	if err != nil {
		return nil, err
	}
	// Modes of what init creates (dirs, device nodes) must be exactly the
	// ones asked for; the user's umask is set just before execve.
	unix.Umask(0)
	lastCap := lastCapability()
	if cfg.Role == initmsg.RoleInit {
		if err := setupContainer(cfg, pipe); err != nil {
			return nil, err
		}
	}
	if err := applyLSM(cfg.Spec.Process, lsm.Proc{Dir: "/proc"}); err != nil {
		return nil, err
	}
	return setupProcess(cfg.Spec, cfg.Role == initmsg.RoleInit, lastCap, filter)
}

// validate rejects configs init cannot honour. Security features that are
// not implemented yet fail loudly rather than run the process unconfined.
func validate(cfg *initmsg.Config) error {
	bad := func(step, format string, a ...any) error {
		return fail(step, "", fmt.Errorf(format, a...))
	}
	switch {
	case cfg.Version < initmsg.Version || cfg.Version > initmsg.VersionHooks:
		return bad(stepConfig, "init config version %d, want %d to %d", cfg.Version, initmsg.Version, initmsg.VersionHooks)
	case cfg.Seccomp != nil && cfg.Version < initmsg.VersionSeccompFilter:
		return bad(stepSeccomp, "init config version %d carries a compiled seccomp filter, which needs version %d", cfg.Version, initmsg.VersionSeccompFilter)
	case cfg.Hooks != nil && cfg.Version < initmsg.VersionHooks:
		return bad(stepHooks, "init config version %d carries hooks, which need version %d", cfg.Version, initmsg.VersionHooks)
	case cfg.Hooks != nil && cfg.Role != initmsg.RoleInit:
		return bad(stepHooks, "init config of role %q carries hooks, which only a container's init runs", cfg.Role)
	case cfg.Role != initmsg.RoleInit && cfg.Role != initmsg.RoleExec:
		return bad(stepConfig, "unknown init role %q", cfg.Role)
	case cfg.Spec == nil || cfg.Spec.Process == nil:
		return bad(stepConfig, "init config has no process")
	case len(cfg.Spec.Process.Args) == 0 || cfg.Spec.Process.Args[0] == "":
		return bad(stepConfig, "process has no args")
	case cfg.Role == initmsg.RoleInit && (cfg.Spec.Root == nil || cfg.Spec.Root.Path == ""):
		return bad(stepRootfs, "init config has no root path")
	case cfg.Seccomp != nil && cfg.Spec.Linux != nil && cfg.Spec.Linux.Seccomp != nil:
		return bad(stepSeccomp, "init config has both a seccomp profile and a compiled filter")
	}
	if l := cfg.Spec.Linux; l != nil {
		// Filesystems take a context= option without complaint where
		// SELinux is off: the label would silently not be applied. The
		// host's /sys is still init's before pivot_root.
		if l.MountLabel != "" && cfg.Role == initmsg.RoleInit && !(lsm.Host{}).SELinuxEnabled() {
			return bad(stepSELinux, "selinux mount label %q: SELinux is not enabled on this host", l.MountLabel)
		}
	}
	return nil
}

// hasNamespace reports whether the spec puts the container in a namespace
// of type t of its own or of its pod (new, or joined by path), as opposed to
// the host's.
func hasNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// newNamespace reports whether the spec asks for a new namespace of type t.
func newNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t && ns.Path == "" {
			return true
		}
	}
	return false
}
