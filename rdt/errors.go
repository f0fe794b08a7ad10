package rdt

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
)

// invalidf returns an error of kind errdefs.ErrInvalidArgument: the class
// name or the class configuration is malformed, or names something unknown.
func invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// preconditionf returns an error of kind errdefs.ErrFailedPrecondition: the
// request is well formed but this host (no resctrl, too few CLOSIDs, no MBA)
// rules it out.
func preconditionf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrFailedPrecondition)...)
}

// lastCmdStatus is the file in which resctrl explains its last failed
// command: write(2) only returns EINVAL, the reason is here
// (Documentation/arch/x86/resctrl.rst, "last_cmd_status").
const lastCmdStatus = "info/last_cmd_status"

// kernelErr adds the kernel's own explanation to a failed resctrl write, so
// "invalid argument" becomes "Need at least 2 bits in the mask: invalid
// argument". ENOSPC (no CLOSID or RMID left) is also a precondition failure.
func (c *Controller) kernelErr(err error) error {
	if b, rerr := c.fs.ReadFile(lastCmdStatus); rerr == nil {
		if s := strings.TrimSpace(string(b)); s != "" && s != "ok" {
			err = fmt.Errorf("%s: %w", s, err)
		}
	}
	if errors.Is(err, syscall.ENOSPC) {
		err = fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	return err
}
