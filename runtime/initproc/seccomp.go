package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/seccomp"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// seccompPlan is how the filter gets loaded at exec. Loading needs
// no_new_privs or CAP_SYS_ADMIN. With no_new_privs the filter is loaded
// just before execve. Without it, and when the process must not keep
// CAP_SYS_ADMIN, init keeps CAP_SYS_ADMIN in its effective and permitted
// sets past the capability step (raise), loads the filter, then drops it
// with one capset (final): the only system calls init makes under the
// filter are that capset, umask and execve, where runc makes every call
// from the switch of user on.
type seccompPlan struct {
	filter *seccomp.Filter
	final  *capSets // nil: the capabilities are already the final ones
	loaded bool
}

// seccompFilter is the config's filter: the one its launcher compiled, or
// the spec's profile compiled here (validate refused a config with both).
func seccompFilter(cfg *initmsg.Config) (*seccomp.Filter, error) {
	if cfg.Seccomp == nil {
		return compileSeccomp(cfg.Spec)
	}
	prog, err := cfg.Seccomp.Instructions()
	if err != nil {
		return nil, fail(stepSeccomp, "", err)
	}
	return &seccomp.Filter{Program: prog, Flags: cfg.Seccomp.Flags}, nil
}

// compileSeccomp compiles the spec's filter, if any, and sends each
// warning (a system call this architecture lacks) to the launcher's log.
func compileSeccomp(spec *specs.Spec) (*seccomp.Filter, error) {
	if spec.Linux == nil || spec.Linux.Seccomp == nil {
		return nil, nil
	}
	f, err := seccomp.Compile(spec.Linux.Seccomp)
	if err != nil {
		return nil, fail(stepSeccomp, "", err)
	}
	for _, w := range f.Warnings {
		logLine("warning", w)
	}
	return f, nil
}

// withSysAdmin returns c with CAP_SYS_ADMIN effective and permitted, and
// whether that changed anything.
func withSysAdmin(c capSets) (capSets, bool) {
	const bit = capSet(1) << unix.CAP_SYS_ADMIN
	if c.effective&bit != 0 {
		return c, false
	}
	c.effective |= bit
	c.permitted |= bit
	return c, true
}

// load installs the filter, then drops CAP_SYS_ADMIN if it was kept only
// for that. It runs last before execve, or before the startContainer
// hooks when there are any; a second call does nothing.
func (s *seccompPlan) load() error {
	if s == nil || s.filter == nil || s.loaded {
		return nil
	}
	s.loaded = true
	if err := s.filter.Load(); err != nil {
		if errors.Is(err, unix.EACCES) {
			err = fmt.Errorf("%w (loading needs no_new_privs or CAP_SYS_ADMIN; the spec sets neither for this user)", err)
		}
		return fail(stepSeccomp, "", err)
	}
	if s.final != nil {
		if err := capset(*s.final); err != nil {
			return fail(stepSeccomp, "", fmt.Errorf("drop CAP_SYS_ADMIN after loading the filter: %w", err))
		}
	}
	return nil
}

// logFd is the launcher's log pipe, -1 when there is none.
var logFd = -1

// openLogPipe takes the log pipe named by the environment, close-on-exec.
func openLogPipe() int {
	s := os.Getenv(initmsg.EnvLogPipe)
	os.Unsetenv(initmsg.EnvLogPipe)
	fd, err := strconv.Atoi(s)
	if err != nil || fd <= 2 {
		return -1
	}
	unix.CloseOnExec(fd)
	logFd = fd
	return fd
}

// logLine writes one JSON log line as nsexec does; the shim logs it.
func logLine(level, msg string) {
	if logFd < 0 {
		return
	}
	b, _ := json.Marshal(struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}{level, msg})
	_, _ = unix.Write(logFd, append(b, '\n'))
}
