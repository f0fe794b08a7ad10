package shim

import (
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// copyBufSize is the read size of an output copier: big enough that a
// chatty container costs few syscalls.
const copyBufSize = 8 << 10

// copyBufs are the copiers' buffers. A copier takes one only once its pipe
// has data, so the thousands of idle streams of a full node hold none.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyOutput moves what r yields into w until EOF, a read error (a
// deadline set by drain) or a write error, like io.Copy.
func copyOutput(w io.Writer, r *os.File) error {
	rc, err := r.SyscallConn()
	if err != nil {
		return err
	}
	for {
		var (
			buf  *[]byte
			n    int
			rerr error
		)
		// Called when the pipe may be readable; false means it was not
		// after all (EAGAIN) and the poller waits again, buffer returned.
		err := rc.Read(func(fd uintptr) bool {
			buf = copyBufs.Get().(*[]byte)
			for {
				n, rerr = unix.Read(int(fd), *buf)
				if rerr != unix.EINTR {
					break
				}
			}
			if rerr == unix.EAGAIN {
				copyBufs.Put(buf)
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
		if n > 0 {
			_, werr := w.Write((*buf)[:n])
			copyBufs.Put(buf)
			if werr != nil {
				return werr
			}
			continue
		}
		copyBufs.Put(buf)
		if rerr != nil {
			// A pty master reads EIO once its last slave fd closed.
			return &os.PathError{Op: "read", Path: r.Name(), Err: rerr}
		}
		return nil // n == 0: EOF
	}
}
