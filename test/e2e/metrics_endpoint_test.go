package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// TestMetricsEndpoint: with metrics.address set, the daemon serves
// Prometheus metrics at /metrics, and they count what really happened: the
// RunPodSandbox call, the CNI ADD it ran, the pull's bytes, the pod READY
// and its container RUNNING (and after StopPodSandbox, NOTREADY and EXITED:
// counted at each scrape, not kept).
func TestMetricsEndpoint(t *testing.T) {
	w := newPodWorldWith(t, func(e *harness.Env) {
		e.WriteConfig("\n[metrics]\naddress = \"127.0.0.1:0\"\n")
	})
	ctx := context.Background()
	pod, podID := w.runPod(t, "metrics", criapi.NamespaceMode_POD)
	w.container(t, podID, pod, "sleeper", "sleep", "3600")

	addr := metricsAddress(t, w.c)
	get := scraper(t, w.e, addr)
	m := get("/metrics")
	m.atLeast(t, 1, "crib_rpc_requests_total", "method", "RunPodSandbox", "code", "OK")
	m.atLeast(t, 1, "crib_rpc_duration_seconds_count", "method", "StartContainer", "code", "OK")
	m.atLeast(t, 1, "crib_rpc_requests_total", "method", "PullImage", "code", "OK")
	m.atLeast(t, 1, "crib_cni_duration_seconds_count", "operation", "ADD", "result", "ok")
	m.atLeast(t, 1, "crib_image_pull_duration_seconds_count", "result", "ok")
	m.atLeast(t, 1<<10, "crib_image_pull_bytes_total") // busybox is about a megabyte
	m.equal(t, 1, "crib_shim_starts_total")
	m.equal(t, 1, "crib_pods", "state", "READY")
	m.equal(t, 0, "crib_pods", "state", "NOTREADY")
	m.equal(t, 1, "crib_containers", "state", "RUNNING")
	m.atLeast(t, 1, "go_goroutines")

	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	m = get("/metrics")
	m.equal(t, 0, "crib_pods", "state", "READY")
	m.equal(t, 1, "crib_pods", "state", "NOTREADY")
	m.equal(t, 0, "crib_containers", "state", "RUNNING")
	m.equal(t, 1, "crib_containers", "state", "EXITED")
	m.atLeast(t, 1, "crib_cni_duration_seconds_count", "operation", "DEL", "result", "ok")
	m.atLeast(t, 1, "crib_rpc_requests_total", "method", "StopPodSandbox", "code", "OK")
	// A refused call counts as the caller's error.
	if _, err := w.c.Runtime.ContainerStatus(ctx, strings.Repeat("0", 64), false); err == nil {
		t.Fatal("ContainerStatus of no container succeeded")
	}
	m = get("/metrics")
	m.atLeast(t, 1, "crib_rpc_requests_total", "method", "ContainerStatus", "code", "NotFound")
	m.atLeast(t, 1, "crib_rpc_errors_total", "class", "caller")

	// /metrics only.
	for _, path := range []string{"/", "/debug/pprof/", "/metrics/x"} {
		if code := statusOf(t, w.e, addr, path); code != http.StatusNotFound {
			t.Errorf("GET %s: HTTP %d, want 404", path, code)
		}
	}
}

// TestMetricsShimKilled: a pod's shim killed with -9 shows in the fault
// counters (its connection lost, then no shim listening) and its container
// is counted EXITED, as ContainerStatus reports it.
func TestMetricsShimKilled(t *testing.T) {
	w := newPodWorldWith(t, func(e *harness.Env) {
		e.WriteConfig("\n[metrics]\naddress = \"127.0.0.1:0\"\n")
	})
	ctx := context.Background()
	pod, podID := w.runPod(t, "shimkill", criapi.NamespaceMode_POD)
	id := w.container(t, podID, pod, "sleeper", "sleep", "3600")
	get := scraper(t, w.e, metricsAddress(t, w.c))
	m := get("/metrics")
	m.equal(t, 0, "crib_shim_connections_lost_total")
	m.equal(t, 0, "crib_shim_gone_total")

	if err := unix.Kill(harness.ShimPid(t, podID), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st, err := w.c.Runtime.ContainerStatus(ctx, id, false)
		return err == nil && st.GetStatus().GetState() == criapi.ContainerState_CONTAINER_EXITED
	}, "the container of the killed shim reported EXITED")
	// The next look-up of the shim (a scrape's container count makes one,
	// collected beside the counters) finds its connection ended and nobody
	// listening on its socket.
	lost, gone := key("crib_shim_connections_lost_total"), key("crib_shim_gone_total")
	waitFor(t, func() bool {
		m = get("/metrics")
		return m.series[lost] >= 1 && m.series[gone] >= 1
	}, "the lost connection and the gone shim counted")
	m.equal(t, 1, "crib_shim_connections_lost_total") // once per connection
	m.equal(t, 0, "crib_shim_redials_total")          // nothing came back
	m.equal(t, 1, "crib_containers", "state", "EXITED")
	m.equal(t, 0, "crib_containers", "state", "RUNNING")
}

// TestMetricsAddressRefused: an address the daemon cannot bind stops its
// start, and the error names the key and the address.
func TestMetricsAddressRefused(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct{ addr, why string }{
		{taken.Addr().String(), "address already in use"},
		{"192.0.2.1:9099", "cannot assign requested address"}, // TEST-NET-1: on no host
	} {
		e := harness.NewEnv(t)
		e.WriteConfig("\n[metrics]\naddress = \"" + tc.addr + "\"\n")
		d := e.Spawn()
		if err := d.Wait(10 * time.Second); err == nil {
			t.Fatalf("daemon started on metrics.address %s", tc.addr)
		}
		harness.MustContain(t, d.Logs.String(), "metrics.address", tc.addr, tc.why)
	}
}

// metricsAddress is the metrics address the daemon bound, from crictl
// info's effective config.
func metricsAddress(t *testing.T, c harness.Clients) string {
	t.Helper()
	resp, err := c.Runtime.Status(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Metrics struct {
			Address string `json:"address"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["config"]), &cfg); err != nil {
		t.Fatalf("info.config: %v", err)
	}
	host, port, err := net.SplitHostPort(cfg.Metrics.Address)
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("info.config.metrics.address = %q, want 127.0.0.1 and the port bound", cfg.Metrics.Address)
	}
	return cfg.Metrics.Address
}

// inNetns is an HTTP client whose connections are made inside the env's
// network namespace, where the daemon listens.
func inNetns(e *harness.Env) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return harness.DialIn("/run/netns/"+e.Netns, network, addr)
		},
	}}
}

func statusOf(t *testing.T, e *harness.Env, addr, path string) int {
	t.Helper()
	resp, err := inNetns(e).Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// scraper returns a function that scrapes path and parses the exposition.
func scraper(t *testing.T, e *harness.Env, addr string) func(path string) exposition {
	return func(path string) exposition {
		t.Helper()
		resp, err := inNetns(e).Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("GET %s: HTTP %d, %s:\n%s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		return parseExposition(t, string(body))
	}
}

// exposition maps each series, written name{k="v",…} with labels sorted as
// the Prometheus client writes them, to its value.
type exposition struct {
	series map[string]float64
	text   string
}

func parseExposition(t *testing.T, text string) exposition {
	t.Helper()
	x := exposition{series: map[string]float64{}, text: text}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		x.series[line[:i]] = v
	}
	return x
}

// key writes name with label pairs as the client does: sorted by label name.
func key(name string, kv ...string) string {
	if len(kv) == 0 {
		return name
	}
	pairs := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", kv[i], kv[i+1]))
	}
	slices.Sort(pairs) // by label name, which leads each pair
	return name + "{" + strings.Join(pairs, ",") + "}"
}

func (x exposition) value(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	k := key(name, kv...)
	v, ok := x.series[k]
	if !ok {
		t.Errorf("no series %s in the metrics:\n%s", k, x.crib())
	}
	return v
}

func (x exposition) atLeast(t *testing.T, min float64, name string, kv ...string) {
	t.Helper()
	if v := x.value(t, name, kv...); v < min {
		t.Errorf("%s = %v, want at least %v", key(name, kv...), v, min)
	}
}

func (x exposition) equal(t *testing.T, want float64, name string, kv ...string) {
	t.Helper()
	if v := x.value(t, name, kv...); v != want {
		t.Errorf("%s = %v, want %v", key(name, kv...), v, want)
	}
}

// crib is the exposition's crib_ lines, for failure messages.
func (x exposition) crib() string {
	var out []string
	for _, l := range strings.Split(x.text, "\n") {
		if strings.HasPrefix(l, "crib_") && !strings.Contains(l, "_bucket{") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
