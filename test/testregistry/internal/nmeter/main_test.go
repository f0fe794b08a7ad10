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
