package cgroupstest

import "golang.org/x/sys/unix"

var errBusy = unix.EBUSY
