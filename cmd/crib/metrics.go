package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/internal/metrics"
	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox"
)

// listenMetrics binds metrics.address at start, before anything is made,
// so an address that cannot be bound stops the daemon with its reason
// instead of leaving it running unobserved. Nil when metrics are off.
func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics server (metrics.address %q): %w", addr, err)
	}
	return l, nil
}

// maxMetricsConns bounds the metrics server's open connections.
const maxMetricsConns = 16

// startMetrics serves m on l at /metrics and nothing else (every other
// path is 404). The function returned stops serving.
func startMetrics(logger klog.Logger, l net.Listener, m *metrics.Metrics) func() {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler(func(msg string, err error) { logger.Error(err, msg) }))
	// Whoever reaches the address must not hold crib's descriptors: idle
	// connections are closed, and few are served at once.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 8 << 10}
	go func() {
		if err := srv.Serve(netutil.LimitListener(l, maxMetricsConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Metrics server failed", "address", l.Addr().String())
		}
	}()
	return func() { _ = srv.Close() }
}

// podStates counts pods by state from their records.
func podStates(pods *sandbox.Manager) metrics.StateCounts {
	return func(context.Context) (map[string]int, error) {
		n := map[string]int{}
		for _, s := range []sandbox.State{sandbox.StateCreating, sandbox.StateReady, sandbox.StateNotReady} {
			n[s.String()] = 0
		}
		for _, p := range pods.List(sandbox.Filter{}) {
			n[p.State.String()]++
		}
		return n, nil
	}
}

// containerStates counts containers by their live state, which the pods'
// shims hold: one List call per pod, as ListContainers makes.
func containerStates(containers *runtime.Manager) metrics.StateCounts {
	return func(ctx context.Context) (map[string]int, error) {
		all, err := containers.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("count containers by state: %w", err)
		}
		n := map[string]int{"CREATED": 0, "RUNNING": 0, "EXITED": 0, "UNKNOWN": 0}
		for _, st := range all {
			n[st.Status.String()]++
		}
		return n, nil
	}
}
