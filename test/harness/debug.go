package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// debugSock is where the daemon serves pprof (config debug.address).
func (e *Env) debugSock() string { return filepath.Join(e.State, "debug.sock") }

// NoFrames counts goroutines caught starting or exiting, with no stack to
// name them by: transient, so leak counts skip them.
const NoFrames = "(starting or exiting: no frames)"

// Goroutines reads the daemon's goroutines from its pprof endpoint, counted
// by the function each one started in (the bottom frame of its stack), so
// that a difference names what leaked.
func (d *Daemon) Goroutines() (map[string]int, error) {
	sock := d.e.debugSock()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, // no server goroutine lingers for the next count
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := client.Get("http://crib/debug/pprof/goroutine?debug=1")
	if err != nil {
		return nil, fmt.Errorf("goroutine profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("goroutine profile: %s", resp.Status)
	}
	return parseGoroutines(bufio.NewScanner(resp.Body))
}

// parseGoroutines reads pprof's debug=1 text: records of "N @ pcs..."
// followed by "#\tpc\tfunction+off\tfile:line" frames, innermost first.
func parseGoroutines(sc *bufio.Scanner) (map[string]int, error) {
	out := map[string]int{}
	n, entry := 0, ""
	flush := func() {
		if entry == "" {
			entry = NoFrames
		}
		if n > 0 {
			out[entry] += n
		}
		n, entry = 0, ""
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#\t"):
			if f := strings.Split(line, "\t"); len(f) > 2 {
				entry, _, _ = strings.Cut(f[2], "+")
			}
		case strings.Contains(line, " @ "):
			flush()
			count, _, _ := strings.Cut(line, " @ ")
			v, err := strconv.Atoi(count)
			if err != nil {
				return nil, fmt.Errorf("goroutine profile: bad record %q", line)
			}
			n = v
		}
	}
	flush()
	if len(out) == 0 {
		return nil, fmt.Errorf("goroutine profile: no goroutines")
	}
	return out, sc.Err()
}
