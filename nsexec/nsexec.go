package nsexec

// The constructor in nsexec.c runs in every process that links this package,
// and returns at once unless _CRIB_INITPIPE is set. cmd/crib imports the
// package for its side effect only.

// #cgo CFLAGS: -std=gnu11 -Wall -Wextra -Werror -O2
import "C"
