package runtime

import (
	"io"
	"sync"
	"time"
)

// clientProbe is how often a streaming session checks that its client is
// still there.
const clientProbe = time.Second

// clientWriter serialises writes to one of a session's streams, so that
// watchClient's probe can share it with the output copier.
type clientWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *clientWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}

// sessionOutputs wraps a session's output streams (nil: not wanted) for
// watchClient and returns the one to probe (nil if neither).
func sessionOutputs(stdout, stderr io.Writer) (io.Writer, io.Writer, io.Writer) {
	var probe io.Writer
	if stderr != nil {
		stderr = &clientWriter{w: stderr}
		probe = stderr
	}
	if stdout != nil {
		stdout = &clientWriter{w: stdout}
		probe = stdout
	}
	return stdout, stderr, probe
}

// watchClient calls gone once the client behind w has left. A streaming
// server hands the runtime a hijacked connection and never cancels the
// session's context when its client goes, so a quiet session (an attach to
// a silent container, an exec of `sleep`) would live on; an empty write
// every clientProbe finds out. stop ends the watch.
func watchClient(w io.Writer, gone func()) (stop func()) {
	if w == nil {
		return func() {}
	}
	t := time.NewTicker(clientProbe)
	ended := make(chan struct{})
	go func() {
		defer t.Stop()
		for {
			select {
			case <-ended:
				return
			case <-t.C:
			}
			if _, err := w.Write(nil); err != nil {
				gone()
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(ended) }) }
}
