package main

import "testing"

func TestIdentifier(t *testing.T) {
	for name, want := range map[string]bool{"PATH": true, "_x1": true, "data-1": false, "1x": false, "": false, "a.b": false} {
		if got := identifier(name); got != want {
			t.Errorf("identifier(%q) = %v", name, got)
		}
	}
}
