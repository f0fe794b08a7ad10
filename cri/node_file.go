package cri

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// maxNodeFile bounds a node file a CRI request names (a Localhost seccomp
// profile): profiles are kilobytes.
const maxNodeFile = 1 << 20

// readNodeFile reads a regular file of the node for cri/spec, bounded: a
// path naming a FIFO or a device would otherwise hang the request or fill
// the daemon's memory. The last component is not followed if a symlink.
func readNodeFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxNodeFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxNodeFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxNodeFile)
	}
	return b, nil
}
