package sandbox

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// invalidf returns an error of kind errdefs.ErrInvalidArgument.
func invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// notFoundf returns an error of kind errdefs.ErrNotFound.
func notFoundf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrNotFound)...)
}

// existsf returns an error of kind errdefs.ErrAlreadyExists.
func existsf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrAlreadyExists)...)
}
