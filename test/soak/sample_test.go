package soak

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crib-runtime/crib/test/harness"
)

// sample is one reading of the daemon and the steady pods' shims.
type sample struct {
	at                    time.Duration
	daemonPss, daemonRss  int // KiB
	daemonFds, goroutines int
	shimPss, shimFds      int // summed over the steady shims; KiB
}

func takeSample(d *harness.Daemon, shims []int) (sample, error) {
	var s sample
	var err error
	pid := d.Pid()
	if s.daemonPss, s.daemonRss, err = memory(pid); err != nil {
		return s, err
	}
	if s.daemonFds, err = fds(pid); err != nil {
		return s, err
	}
	gs, err := d.Goroutines()
	if err != nil {
		return s, err
	}
	for entry, n := range gs {
		if entry != harness.NoFrames {
			s.goroutines += n
		}
	}
	for _, pid := range shims {
		pss, _, err := memory(pid)
		if err != nil {
			return s, fmt.Errorf("steady shim %d: %w", pid, err)
		}
		n, err := fds(pid)
		if err != nil {
			return s, fmt.Errorf("steady shim %d: %w", pid, err)
		}
		s.shimPss, s.shimFds = s.shimPss+pss, s.shimFds+n
	}
	return s, nil
}

// memory reads a process's proportional and resident set sizes, KiB.
func memory(pid int) (pss, rss int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Pss:":
			pss, _ = strconv.Atoi(f[1])
		case "Rss:":
			rss, _ = strconv.Atoi(f[1])
		}
	}
	if pss == 0 || rss == 0 {
		return 0, 0, fmt.Errorf("smaps_rollup of %d: no Pss or Rss", pid)
	}
	return pss, rss, nil
}

func fds(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// report logs the samples as a table, a hundred rows at most.
func report(t *testing.T, samples []sample) {
	t.Logf("%8s %12s %12s %10s %11s %14s %10s", "at", "daemon PSS", "daemon RSS", "daemon fds", "goroutines", "steady shims PSS", "shim fds")
	step := max(1, len(samples)/100)
	for i, s := range samples {
		if i%step == 0 || i == len(samples)-1 {
			t.Logf("%8s %9d KiB %9d KiB %10d %11d %12d KiB %10d", s.at.Round(time.Second), s.daemonPss, s.daemonRss,
				s.daemonFds, s.goroutines, s.shimPss, s.shimFds)
		}
	}
}

// Slack allowed between the warm run's first and second halves: memory
// may grow by a tenth plus a little (the garbage collector's cycle makes a
// heap breathe), counts (the median: what in-flight calls hold comes and
// goes, a leak raises the middle) by a few. A short run (make test's) has
// not reached a steady heap when its warm part starts: its memory may grow
// by half, which still catches a leak per call.
const (
	memRatio       = 1.10
	shortMemRatio  = 1.50
	steadyAfter    = 10 * time.Minute // warm runs at least this long get memRatio
	daemonMemSlack = 2048             // KiB
	shimMemSlack   = 256              // KiB per steady shim
	daemonFdSlack  = 4
	goroutineSlack = 8
	shimFdSlack    = 2 // per steady shim
)

// judge fails the run when something grows: the first quarter of the run
// is warm-up; the rest is split in halves, and the second half's mean
// memory and median counts must stay within the slack of the first's.
func judge(t *testing.T, samples []sample, nshims int) {
	warm := samples[len(samples)/4:]
	if len(warm) < 4 {
		t.Fatalf("only %d samples after warm-up: run longer", len(warm))
	}
	early, late := warm[:len(warm)/2], warm[len(warm)/2:]
	ratio := memRatio
	if span := warm[len(warm)-1].at - warm[0].at; span < steadyAfter {
		ratio = shortMemRatio
	}
	check := func(what string, get func(sample) int, mean bool, limit func(int) int) {
		e, l := median(early, get), median(late, get)
		if mean {
			e, l = avg(early, get), avg(late, get)
		}
		t.Logf("%s: first half %d, second half %d (limit %d)", what, e, l, limit(e))
		if l > limit(e) {
			t.Errorf("%s grew: %d in the first half of the warm run, %d in the second (limit %d)", what, e, l, limit(e))
		}
	}
	grow := func(slack int) func(int) int {
		return func(e int) int { return int(float64(e)*ratio) + slack }
	}
	plus := func(slack int) func(int) int { return func(e int) int { return e + slack } }
	check("daemon PSS (KiB, mean)", func(s sample) int { return s.daemonPss }, true, grow(daemonMemSlack))
	check("daemon fds (median)", func(s sample) int { return s.daemonFds }, false, plus(daemonFdSlack))
	check("daemon goroutines (median)", func(s sample) int { return s.goroutines }, false, plus(goroutineSlack))
	check("steady shims' PSS (KiB, mean)", func(s sample) int { return s.shimPss }, true, grow(shimMemSlack*nshims))
	check("steady shims' fds (median)", func(s sample) int { return s.shimFds }, false, plus(shimFdSlack*nshims))
}

func median(ss []sample, get func(sample) int) int {
	v := make([]int, len(ss))
	for i, s := range ss {
		v[i] = get(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func avg(ss []sample, get func(sample) int) int {
	sum := 0
	for _, s := range ss {
		sum += get(s)
	}
	return sum / len(ss)
}
