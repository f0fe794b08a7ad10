// Package soak runs pods for a long time under churn and checks that the
// daemon's and the shims' memory, fds and goroutines stay flat
// (`make soak`: an hour, 50 pods; `make test` runs a short one). Needs
// root. Test-only code.
package soak
