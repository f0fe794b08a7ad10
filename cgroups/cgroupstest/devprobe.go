package cgroupstest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ProbeDevices is what a test process in a cgroup with device rules does:
// open /dev/null and /dev/zero, make a /dev/vcs node (c 7:0) in dir and
// open it. It returns "null=… zero=… mknod=… vcs=…" with ok or the errno.
func ProbeDevices(dir string) string {
	var out []string
	try := func(name string, err error) {
		var errno unix.Errno
		switch {
		case err == nil:
			out = append(out, name+"=ok")
		case errors.As(err, &errno):
			out = append(out, name+"="+errno.Error())
		default:
			out = append(out, name+"="+err.Error())
		}
	}
	open := func(p string) error {
		f, err := os.Open(p)
		if err == nil {
			f.Close()
		}
		return err
	}
	try("null", open("/dev/null"))
	try("zero", open("/dev/zero"))
	vcs := filepath.Join(dir, "vcs")
	err := unix.Mknod(vcs, unix.S_IFCHR|0o600, int(unix.Mkdev(7, 0)))
	try("mknod", err)
	if err == nil {
		try("vcs", open(vcs))
	}
	return strings.Join(out, " ")
}
