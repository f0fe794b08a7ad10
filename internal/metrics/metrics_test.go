package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// scrape returns the text exposition of m's handler, and what it logged.
func scrape(t *testing.T, m *Metrics) (string, []string) {
	t.Helper()
	var logged []string
	h := m.Handler(func(msg string, err error) { logged = append(logged, msg+": "+err.Error()) })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: HTTP %d: %s", rec.Code, rec.Body)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b), logged
}

// wantLines fails for each line missing from the exposition.
func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		have[l] = true
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("no line %q in the exposition", l)
		}
	}
}

func TestRecorded(t *testing.T) {
	m := New()
	m.ObserveRPC("RunPodSandbox", "OK", 300*time.Millisecond)
	m.ObserveRPC("RunPodSandbox", "OK", 2*time.Second)
	m.ObserveRPC("ContainerStatus", "NotFound", time.Millisecond)
	m.ObserveRPC("PullImage", "DataLoss", time.Second)
	m.ObserveRPC("PullImage", "Unavailable", time.Second)
	m.ObserveRPC("StopContainer", "DeadlineExceeded", time.Second)
	m.RecoveredPanic("ExecSync")
	m.ObserveCNI("ADD", 50*time.Millisecond, nil)
	m.ObserveCNI("DEL", time.Second, errors.New("plugin failed"))
	m.ObservePull(3*time.Second, nil)
	m.ObservePullBytes(1000)
	m.ObservePullBytes(24)
	m.ShimStarted()
	m.ShimConnectionLost()
	m.ShimRedialled()
	m.ShimGone()
	m.ShimGone()
	text, _ := scrape(t, m)
	wantLines(t, text,
		`crib_rpc_requests_total{code="OK",method="RunPodSandbox"} 2`,
		`crib_rpc_requests_total{code="NotFound",method="ContainerStatus"} 1`,
		`crib_rpc_duration_seconds_count{code="OK",method="RunPodSandbox"} 2`,
		`crib_rpc_duration_seconds_bucket{code="OK",method="RunPodSandbox",le="0.5"} 1`,
		`crib_rpc_duration_seconds_sum{code="OK",method="RunPodSandbox"} 2.3`,
		`crib_rpc_errors_total{class="caller"} 1`,
		`crib_rpc_errors_total{class="crib"} 1`,
		`crib_rpc_errors_total{class="resource"} 1`,
		`crib_rpc_errors_total{class="cancelled"} 1`,
		`crib_rpc_panics_total{method="ExecSync"} 1`,
		`crib_cni_duration_seconds_count{operation="ADD",result="ok"} 1`,
		`crib_cni_duration_seconds_count{operation="DEL",result="error"} 1`,
		`crib_image_pull_duration_seconds_count{result="ok"} 1`,
		`crib_image_pull_bytes_total 1024`,
		`crib_shim_starts_total 1`,
		`crib_shim_connections_lost_total 1`,
		`crib_shim_redials_total 1`,
		`crib_shim_gone_total 2`,
	)
	// An OK call is no error of any class.
	if strings.Contains(text, `crib_rpc_errors_total{class=""}`) {
		t.Error("an OK call counted as an error")
	}
	// The Go runtime's and the process's own, for soaks.
	for _, name := range []string{"go_goroutines ", "process_open_fds "} {
		if !strings.Contains(text, "\n"+name) {
			t.Errorf("no %s in the exposition", name)
		}
	}
}

func TestStatesAtScrape(t *testing.T) {
	m := New()
	pods := map[string]int{"READY": 0, "NOTREADY": 0}
	m.CountStates(func(context.Context) (map[string]int, error) { return pods, nil },
		func(context.Context) (map[string]int, error) { return nil, errors.New("shim of pod 1: unavailable") })
	text, _ := scrape(t, m)
	wantLines(t, text, `crib_pods{state="NOTREADY"} 0`, `crib_pods{state="READY"} 0`)
	// The gauges are counted at each scrape, not kept.
	pods["READY"] = 3
	text, logged := scrape(t, m)
	wantLines(t, text, `crib_pods{state="READY"} 3`)
	// A count that fails is logged and left out; the rest is served.
	if strings.Contains(text, "crib_containers{") {
		t.Error("containers served although their count failed")
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "shim of pod 1: unavailable") {
		t.Errorf("logged %q, want the failed count", logged)
	}
}
