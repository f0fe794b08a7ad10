package cgroups

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// Invalidf returns an error of kind errdefs.ErrInvalidArgument: the caller
// asked for something malformed or something this host cannot do.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// Preconditionf returns an error of kind errdefs.ErrFailedPrecondition: the
// request is well formed but the host or crib's configuration rules it out.
func Preconditionf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrFailedPrecondition)...)
}
