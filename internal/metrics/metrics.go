// Package metrics defines crib's Prometheus metrics: what the daemon serves
// on metrics.address under /metrics. It is the one package that imports the
// Prometheus client library (internal/layers checks that): the packages that
// record (cri, sandbox/cni, runtime/image, the daemon's shim wiring) define
// a small observer interface of their own, which *Metrics implements with
// plain Go types, so none of them depends on Prometheus.
//
// Labels are few and bounded: the RPC's method and gRPC code, an operation,
// a result, a state. No pod, container or image names or IDs: each would
// make a new series per object, for ever.
//
// It imports no crib package. Internal to crib; no API compatibility
// promised.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Result label values.
const (
	resultOK    = "ok"
	resultError = "error"
)

// Error classes of crib_rpc_errors_total: whose fault a failed call was.
const (
	// ClassCrib is crib's own fault (Internal, Unknown, DataLoss), what the
	// daemon logs as an error: every one wants a look.
	ClassCrib = "crib"
	// ClassCaller is a request crib refused as the CRI says it must
	// (InvalidArgument, NotFound, FailedPrecondition, …).
	ClassCaller = "caller"
	// ClassResource is a resource that was not there or not enough
	// (Unavailable, ResourceExhausted, Aborted): the shim, the registry,
	// the disk.
	ClassResource = "resource"
	// ClassCancelled is a call the caller gave up on or that ran out of
	// time (Canceled, DeadlineExceeded).
	ClassCancelled = "cancelled"
)

// classOf sorts a gRPC code name (codes.Code's String) into a class; "" for OK.
func classOf(code string) string {
	switch code {
	case "OK":
		return ""
	case "Internal", "Unknown", "DataLoss":
		return ClassCrib
	case "Unavailable", "ResourceExhausted", "Aborted":
		return ClassResource
	case "Canceled", "DeadlineExceeded":
		return ClassCancelled
	}
	return ClassCaller
}

// Buckets, in seconds. RPCs span a List of microseconds to a pull of
// minutes; CNI plugins take milliseconds to seconds; pulls seconds to
// minutes.
var (
	rpcBuckets  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	cniBuckets  = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	pullBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
)

// StateCounts counts objects by state at scrape time (pods or containers,
// from the daemon's stores), so the gauges cannot drift from what the
// stores hold. The map should name every state, zero counts too, so that
// a series does not vanish when its count reaches zero.
type StateCounts func(ctx context.Context) (map[string]int, error)

// scrapeTimeout bounds a scrape's state counts (containers ask each
// pod's shim).
const scrapeTimeout = 5 * time.Second

// Metrics holds crib's metrics in a registry of its own (no global state).
// Its methods may be called concurrently.
type Metrics struct {
	reg *prometheus.Registry

	rpcs       *prometheus.CounterVec
	rpcSeconds *prometheus.HistogramVec
	rpcErrors  *prometheus.CounterVec
	rpcPanics  *prometheus.CounterVec

	cniSeconds *prometheus.HistogramVec

	pullSeconds *prometheus.HistogramVec
	pullBytes   prometheus.Counter

	shimStarts, shimLost, shimRedials, shimGone prometheus.Counter
}

// New returns crib's metrics, with the Go runtime's and the process's own
// (goroutines, heap, descriptors: what a soak watches). CountStates adds
// the pods and containers.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.rpcs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crib_rpc_requests_total",
		Help: "CRI calls served, by method and gRPC code.",
	}, []string{"method", "code"})
	m.rpcSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "crib_rpc_duration_seconds",
		Help:    "Time to serve a CRI call, by method and gRPC code.",
		Buckets: rpcBuckets,
	}, []string{"method", "code"})
	m.rpcErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crib_rpc_errors_total",
		Help: "Failed CRI calls by class: crib (Internal, Unknown, DataLoss), caller (refused requests), resource (Unavailable, ResourceExhausted, Aborted), cancelled (Canceled, DeadlineExceeded).",
	}, []string{"class"})
	m.rpcPanics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crib_rpc_panics_total",
		Help: "Panics recovered in CRI handlers (answered as Internal), by method.",
	}, []string{"method"})
	m.cniSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "crib_cni_duration_seconds",
		Help:    "Time the CNI plugins took, by operation (ADD, DEL) and result (ok, error).",
		Buckets: cniBuckets,
	}, []string{"operation", "result"})
	m.pullSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "crib_image_pull_duration_seconds",
		Help:    "Time to pull an image, by result (ok, error); concurrent pulls of one reference that share a download count once.",
		Buckets: pullBuckets,
	}, []string{"result"})
	m.pullBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crib_image_pull_bytes_total",
		Help: "Bytes downloaded from registries by pulls: manifests, configs and layer blobs (a layer already stored is not fetched again).",
	})
	m.shimStarts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crib_shim_starts_total",
		Help: "Pod shims started.",
	})
	m.shimLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crib_shim_connections_lost_total",
		Help: "Connections to a pod's shim found ended (the shim died or was restarted), each counted once.",
	})
	m.shimRedials = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crib_shim_redials_total",
		Help: "Connections to a pod's shim made again after the previous one ended.",
	})
	m.shimGone = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crib_shim_gone_total",
		Help: "Dials that found no shim listening for a pod that should have one (its containers are then EXITED with reason Unknown).",
	})
	m.reg.MustRegister(m.rpcs, m.rpcSeconds, m.rpcErrors, m.rpcPanics, m.cniSeconds, m.pullSeconds, m.pullBytes,
		m.shimStarts, m.shimLost, m.shimRedials, m.shimGone,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// CountStates adds gauges of pods and containers by state, computed from
// pods and containers (either may be nil) at each scrape. Call it once,
// when the stores are open.
func (m *Metrics) CountStates(pods, containers StateCounts) {
	m.reg.MustRegister(&stateCollector{
		pods:       prometheus.NewDesc("crib_pods", "Pod sandboxes by state (CREATING, READY, NOTREADY), counted at scrape time.", []string{"state"}, nil),
		containers: prometheus.NewDesc("crib_containers", "Containers by state (CREATED, RUNNING, EXITED, UNKNOWN), counted at scrape time.", []string{"state"}, nil),
		countPods:  pods, countContainers: containers,
	})
}

// ObserveRPC records one served CRI call: method is the RPC's name
// ("RunPodSandbox"), code the gRPC code's name ("OK", "NotFound").
func (m *Metrics) ObserveRPC(method, code string, took time.Duration) {
	m.rpcs.WithLabelValues(method, code).Inc()
	m.rpcSeconds.WithLabelValues(method, code).Observe(took.Seconds())
	if class := classOf(code); class != "" {
		m.rpcErrors.WithLabelValues(class).Inc()
	}
}

// RecoveredPanic records a panic a CRI handler raised and the interceptor
// recovered.
func (m *Metrics) RecoveredPanic(method string) { m.rpcPanics.WithLabelValues(method).Inc() }

// ObserveCNI records one run of the network's plugins: operation is "ADD"
// or "DEL".
func (m *Metrics) ObserveCNI(operation string, took time.Duration, err error) {
	m.cniSeconds.WithLabelValues(operation, result(err)).Observe(took.Seconds())
}

// ObservePull records one pull's work.
func (m *Metrics) ObservePull(took time.Duration, err error) {
	m.pullSeconds.WithLabelValues(result(err)).Observe(took.Seconds())
}

// ObservePullBytes records n bytes downloaded by a pull.
func (m *Metrics) ObservePullBytes(n int64) {
	if n > 0 {
		m.pullBytes.Add(float64(n))
	}
}

// ShimStarted records a pod's shim started.
func (m *Metrics) ShimStarted() { m.shimStarts.Inc() }

// ShimConnectionLost records a connection to a shim found ended.
func (m *Metrics) ShimConnectionLost() { m.shimLost.Inc() }

// ShimRedialled records a shim connected to again after its connection ended.
func (m *Metrics) ShimRedialled() { m.shimRedials.Inc() }

// ShimGone records a dial that found no shim listening.
func (m *Metrics) ShimGone() { m.shimGone.Inc() }

// Handler serves the metrics in the Prometheus text (or OpenMetrics)
// format. A state count that fails is logged through logf and left out;
// the rest is served.
func (m *Metrics) Handler(logf func(msg string, err error)) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog(logf),
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape is cheap but counting containers asks every shim: two
		// scrapes at once are enough.
		MaxRequestsInFlight: 2,
	})
}

type errorLog func(msg string, err error)

func (f errorLog) Println(v ...any) {
	var err error
	for _, x := range v {
		if e, ok := x.(error); ok {
			err = e
		}
	}
	if err == nil {
		err = errors.New("metrics")
	}
	f("Metrics scrape incomplete", err)
}

func result(err error) string {
	if err != nil {
		return resultError
	}
	return resultOK
}

// stateCollector computes the pods and containers gauges at each scrape.
type stateCollector struct {
	pods, containers           *prometheus.Desc
	countPods, countContainers StateCounts
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pods
	ch <- c.containers
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	collectStates(ctx, ch, c.pods, c.countPods)
	collectStates(ctx, ch, c.containers, c.countContainers)
}

func collectStates(ctx context.Context, ch chan<- prometheus.Metric, desc *prometheus.Desc, count StateCounts) {
	if count == nil {
		return
	}
	n, err := count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(desc, err)
		return
	}
	states := make([]string, 0, len(n))
	for s := range n {
		states = append(states, s)
	}
	sort.Strings(states)
	for _, s := range states {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n[s]), s)
	}
}
