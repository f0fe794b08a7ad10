// Package clients drives crib with the real CRI clients it exists for, built
// from their Go modules by hack/clients.sh into _output/clients: crictl (the
// README's walk-through, run literally) and the kubelet (static pods).
// critest has its own package, test/critest. Test-only code; needs root.
package clients
