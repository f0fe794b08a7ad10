package initproc

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// setupConsole gives the process a terminal: a pty allocated from the
// container's own devpts instance (/dev/ptmx inside the container), whose
// slave becomes stdin, stdout, stderr and the controlling terminal of a new
// session, and whose master goes to the launcher over the init socket
// (initmsg.SendConsole). It runs after pivot_root and the user switch, so
// the slave belongs to the container's user.
func setupConsole(pipe *os.File) error {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(stepTerminal, "/dev/ptmx", fmt.Errorf("open pty master: %w", err))
	}
	defer master.Close()
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return fail(stepTerminal, "/dev/ptmx", fmt.Errorf("unlock pty: %w", err))
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		return fail(stepTerminal, "/dev/ptmx", fmt.Errorf("pty number: %w", err))
	}
	name := "/dev/pts/" + strconv.Itoa(n)
	slave, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fail(stepTerminal, name, fmt.Errorf("open pty slave: %w", err))
	}
	defer unix.Close(slave)
	if _, err := unix.Setsid(); err != nil {
		return fail(stepTerminal, name, fmt.Errorf("new session: %w", err))
	}
	if err := unix.IoctlSetInt(slave, unix.TIOCSCTTY, 0); err != nil {
		return fail(stepTerminal, name, fmt.Errorf("make controlling terminal: %w", err))
	}
	for std := 0; std <= 2; std++ {
		if err := unix.Dup2(slave, std); err != nil {
			return fail(stepTerminal, name, fmt.Errorf("dup pty to fd %d: %w", std, err))
		}
	}
	if err := initmsg.SendConsole(pipe, master); err != nil {
		return fail(stepTerminal, name, err)
	}
	return nil
}
