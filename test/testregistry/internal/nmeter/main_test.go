package main

import (
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	at := time.Date(2026, 12, 6, 4, 5, 6, 789_000_000, time.UTC)
	for format, want := range map[string]string{"%3t": "04:05:06.789", "%t": "04:05:06", "at %1t!": "at 04:05:06.7!"} {
		if got, err := line(format, at); err != nil || got != want {
			t.Errorf("line(%q) = %q, %v; want %q", format, got, err, want)
		}
	}
	for _, bad := range []string{"%c", "%3", "%10t"} {
		if _, err := line(bad, at); err == nil {
			t.Errorf("line(%q) is accepted", bad)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		delay  time.Duration
		format string
	}{
		{[]string{"-d0", "%3t"}, 0, "%3t"},
		{[]string{"-d", "250", "%t"}, 250 * time.Millisecond, "%t"},
		{[]string{"%t"}, time.Second, "%t"},
	} {
		d, f, err := parseArgs(tc.args)
		if err != nil || d != tc.delay || f != tc.format {
			t.Errorf("parseArgs(%q) = %v, %q, %v; want %v, %q", tc.args, d, f, err, tc.delay, tc.format)
		}
	}
	for _, bad := range [][]string{{"-dx", "%t"}, {}, {"%t", "%t"}} {
		if _, _, err := parseArgs(bad); err == nil {
			t.Errorf("parseArgs(%q) is accepted", bad)
		}
	}
}
