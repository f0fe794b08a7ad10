package cri

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/hostfs"
	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox"
)

type fakeSandboxes struct {
	Sandboxes
	pods []*sandbox.Pod
}

func (f fakeSandboxes) List(sandbox.Filter) []*sandbox.Pod { return f.pods }

type fakeContainers struct {
	Containers
	states []runtime.State
}

func (f fakeContainers) List(context.Context) ([]runtime.State, error) { return f.states, nil }

// fakeMetrics serves Stats and MetricsReader from maps keyed by cgroup,
// container id and netns; what is missing is NotFound, as for a container
// that exited while it was listed.
type fakeMetrics struct {
	Stats
	cgroups map[string]*cgroups.Metrics
	layers  map[string]uint64
	nets    map[string][]sandbox.InterfaceStats
	// broken cgroups fail as a threaded one does (EOPNOTSUPP).
	broken map[string]bool
}

func (f fakeMetrics) CgroupMetrics(path string) (*cgroups.Metrics, error) {
	if f.broken[path] {
		return nil, fmt.Errorf("read %s/cgroup.procs: %w", path, syscall.EOPNOTSUPP)
	}
	if m, ok := f.cgroups[path]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("cgroup %s: %w", path, errdefs.ErrNotFound)
}

func (f fakeMetrics) FDs(pids []int) (uint64, uint64) {
	return 10 * uint64(len(pids)), uint64(len(pids))
}

func (f fakeMetrics) StorageFS() (hostfs.Filesystem, error) {
	return hostfs.Filesystem{Device: "/dev/vdb", CapacityBytes: 1 << 30, Inodes: 1000, InodesFree: 900}, nil
}

func (f fakeMetrics) DeviceName(major, minor uint32) string {
	return fmt.Sprintf("/dev/dev%d-%d", major, minor)
}

func (f fakeMetrics) OpenFilesLimit(pid int) (uint64, bool) { return 1024 + uint64(pid), pid != 0 }

func (f fakeMetrics) WritableLayer(id string) (uint64, uint64, error) {
	if n, ok := f.layers[id]; ok {
		return n, 1, nil
	}
	return 0, 0, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
}

func (f fakeMetrics) Network(netns string) ([]sandbox.InterfaceStats, error) {
	return f.nets[netns], nil
}

// fullCgroup has every figure set, a quota, PSI and block I/O, so that
// every metric a cgroup can give is given.
func fullCgroup(pids ...int) *cgroups.Metrics {
	return &cgroups.Metrics{
		Stats: cgroups.Stats{
			CPU: cgroups.CPUStats{UsageNanos: 2_500_000_000, UserNanos: 2_000_000_000, SystemNanos: 1_000_000_000,
				Periods: 40, ThrottledPeriods: 4, ThrottledNanos: 3_000_000_000},
			Memory: cgroups.MemoryStats{UsageBytes: 5 << 20, WorkingSetBytes: 4 << 20, RSSBytes: 3 << 20,
				PageFaults: 100, MajorPageFaults: 2, LimitBytes: 64 << 20},
			Pids: cgroups.PidsStats{Current: 7, Limit: 100},
			PSI: &cgroups.PSIStats{CPU: cgroups.PSIData{Some: cgroups.PSILine{TotalMicros: 5_000_000},
				Full: cgroups.PSILine{TotalMicros: 2_000_000}}},
		},
		Memory: cgroups.MemoryDetail{CacheBytes: 1 << 20, MappedFileBytes: 1 << 10, KernelBytes: 1 << 16,
			SwapBytes: 4096, MaxUsageBytes: 6 << 20, Failcnt: 3},
		Limits: cgroups.Limits{CPUPeriodMicros: 100000, CPUQuotaMicros: 20000, CPUShares: 1024,
			SwapBytes: 1 << 20, ReservationBytes: 1 << 19},
		IO:       []cgroups.DeviceIO{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}},
		Procs:    pids,
		OOMKills: 1,
	}
}

func metricsWorld() (*Server, *sandbox.Pod, runtime.State) {
	created := time.Unix(1_700_000_000, 0)
	pod := &sandbox.Pod{ID: "pod1", Name: "web", Namespace: "prod", State: sandbox.StateReady,
		CreatedAt: created, CgroupParent: "/kubepods/podu1", NetNS: "/run/netns/p1"}
	ctr := runtime.State{Container: runtime.Container{ID: "c1", SandboxID: "pod1", Name: "app",
		Image: "registry.example/app:1", Cgroup: "/kubepods/podu1/c1", CreatedAt: created},
		Status: runtime.StatusRunning, Pid: 4242, StartedAt: created.Add(2 * time.Second)}
	exited := runtime.State{Container: runtime.Container{ID: "c0", SandboxID: "pod1", Cgroup: "/kubepods/podu1/c0"},
		Status: runtime.StatusExited}
	// c2 is listed running but its cgroup is already gone.
	vanished := runtime.State{Container: runtime.Container{ID: "c2", SandboxID: "pod1", Cgroup: "/kubepods/podu1/c2"},
		Status: runtime.StatusRunning}
	fm := fakeMetrics{
		cgroups: map[string]*cgroups.Metrics{pod.CgroupParent: fullCgroup(1, 2, 3), ctr.Cgroup: fullCgroup(2)},
		layers:  map[string]uint64{"c1": 12345, "c2": 1},
		nets: map[string][]sandbox.InterfaceStats{pod.NetNS: {{Name: "eth0", RxBytes: 1000, RxPackets: 10,
			RxErrors: 1, RxDropped: 2, TxBytes: 2000, TxPackets: 20, TxErrors: 3, TxDropped: 4}}},
	}
	s := &Server{sandboxes: fakeSandboxes{pods: []*sandbox.Pod{pod}},
		containers: fakeContainers{states: []runtime.State{ctr, exited, vanished}}, stats: fm, metrics: fm}
	return s, pod, ctr
}

// value finds the metric name with the given label values (all of them,
// base labels first) and returns its value.
func value(t *testing.T, ms []*criapi.Metric, name string, labels ...string) uint64 {
	t.Helper()
	for _, m := range ms {
		if m.GetName() == name && cmp.Equal(m.GetLabelValues(), labels) {
			return m.GetValue().GetValue()
		}
	}
	t.Errorf("no metric %s%q", name, labels)
	return 0
}

func TestListPodSandboxMetricsValues(t *testing.T) {
	s, _, _ := metricsWorld()
	resp, err := s.ListPodSandboxMetrics(context.Background(), &criapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetPodMetrics()) != 1 {
		t.Fatalf("pods: %v", resp.GetPodMetrics())
	}
	pm := resp.GetPodMetrics()[0]
	if pm.GetPodSandboxId() != "pod1" || len(pm.GetContainerMetrics()) != 1 || pm.GetContainerMetrics()[0].GetContainerId() != "c1" {
		t.Fatalf("want pod1 with c1 only (c0 exited, c2 gone): %v", pm)
	}
	pod := []string{"", "/kubepods/podu1", "", "", "prod", "web"}
	ctr := []string{"app", "/kubepods/podu1/c1", "registry.example/app:1", "c1", "prod", "web"}
	with := func(base []string, extra ...string) []string { return append(append([]string{}, base...), extra...) }
	cm := pm.GetContainerMetrics()[0].GetMetrics()
	for _, c := range []struct {
		ms     []*criapi.Metric
		name   string
		labels []string
		want   uint64
	}{
		// Whole seconds: 2.5 s of CPU is 2.
		{cm, "container_cpu_usage_seconds_total", with(ctr, "total"), 2},
		{cm, "container_cpu_user_seconds_total", ctr, 2},
		{cm, "container_cpu_system_seconds_total", ctr, 1},
		{cm, "container_cpu_cfs_throttled_seconds_total", ctr, 3},
		{cm, "container_cpu_cfs_periods_total", ctr, 40},
		{cm, "container_spec_cpu_quota", ctr, 20000},
		{cm, "container_spec_cpu_shares", ctr, 1024},
		{cm, "container_memory_usage_bytes", ctr, 5 << 20},
		{cm, "container_memory_working_set_bytes", ctr, 4 << 20},
		{cm, "container_memory_cache", ctr, 1 << 20},
		{cm, "container_memory_failures_total", with(ctr, "pgmajfault", "hierarchy"), 2},
		{cm, "container_oom_events_total", ctr, 1},
		{cm, "container_spec_memory_limit_bytes", ctr, 64 << 20},
		{cm, "container_processes", ctr, 1},
		{cm, "container_threads", ctr, 7},
		{cm, "container_file_descriptors", ctr, 10},
		{cm, "container_sockets", ctr, 1},
		{cm, "container_pressure_cpu_stalled_seconds_total", ctr, 2},
		{cm, "container_pressure_cpu_waiting_seconds_total", ctr, 5},
		{cm, "container_blkio_device_usage_total", with(ctr, "/dev/dev8-0", "8", "0", "Write"), 8192},
		{cm, "container_fs_reads_total", with(ctr, "/dev/dev8-0"), 1},
		{cm, "container_fs_usage_bytes", with(ctr, "/dev/vdb"), 12345},
		{cm, "container_fs_inodes_free", with(ctr, "/dev/vdb"), 900},
		{cm, "container_start_time_seconds", ctr, 1_700_000_002},
		{cm, "container_ulimits_soft", with(ctr, "max_open_files"), 1024 + 4242},
		{pm.GetMetrics(), "container_processes", pod, 3},
		{pm.GetMetrics(), "container_start_time_seconds", pod, 1_700_000_000},
		{pm.GetMetrics(), "container_network_receive_bytes_total", with(pod, "eth0"), 1000},
		{pm.GetMetrics(), "container_network_transmit_packets_dropped_total", with(pod, "eth0"), 4},
	} {
		if got := value(t, c.ms, c.name, c.labels...); got != c.want {
			t.Errorf("%s%q = %d, want %d", c.name, c.labels, got, c.want)
		}
	}
	for _, m := range append(cm, pm.GetMetrics()...) {
		if m.GetTimestamp() != 0 {
			t.Errorf("%s has timestamp %d; metrics read live carry 0", m.GetName(), m.GetTimestamp())
		}
	}
}

// TestMetricDescriptorsMatchMetrics holds the descriptors and the metrics
// together: every metric returned is described with as many label keys as
// it has values, and of the same type; every descriptor is returned for a
// pod whose cgroup has every figure.
func TestMetricDescriptorsMatchMetrics(t *testing.T) {
	s, _, _ := metricsWorld()
	descs, err := s.ListMetricDescriptors(context.Background(), &criapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*criapi.MetricDescriptor{}
	for _, d := range descs.GetDescriptors() {
		if byName[d.GetName()] != nil {
			t.Errorf("descriptor %s twice", d.GetName())
		}
		if d.GetHelp() == "" || len(d.GetLabelKeys()) < len(metricLabels) {
			t.Errorf("descriptor %v lacks help or labels", d)
		}
		byName[d.GetName()] = d
	}
	resp, err := s.ListPodSandboxMetrics(context.Background(), &criapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var all []*criapi.Metric
	for _, pm := range resp.GetPodMetrics() {
		all = append(all, pm.GetMetrics()...)
		for _, cm := range pm.GetContainerMetrics() {
			all = append(all, cm.GetMetrics()...)
		}
	}
	seen := map[string]bool{}
	for _, m := range all {
		d := byName[m.GetName()]
		if d == nil {
			t.Errorf("metric %s has no descriptor", m.GetName())
			continue
		}
		if len(m.GetLabelValues()) != len(d.GetLabelKeys()) {
			t.Errorf("metric %s: values %q for keys %q", m.GetName(), m.GetLabelValues(), d.GetLabelKeys())
		}
		if m.GetMetricType() != metricTypes[m.GetName()] {
			t.Errorf("metric %s: type %v", m.GetName(), m.GetMetricType())
		}
		seen[m.GetName()] = true
	}
	for name := range byName {
		if !seen[name] {
			t.Errorf("descriptor %s is never returned", name)
		}
	}
}

func TestListPodSandboxMetricsWithoutCgroupOrNetwork(t *testing.T) {
	// A host-network pod without a cgroup parent has no pod-level
	// metrics, but its containers have theirs.
	s, pod, _ := metricsWorld()
	pod.CgroupParent, pod.NetNS = "", ""
	resp, err := s.ListPodSandboxMetrics(context.Background(), &criapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pm := resp.GetPodMetrics()[0]
	if len(pm.GetMetrics()) != 0 || len(pm.GetContainerMetrics()) != 1 {
		t.Errorf("pod metrics %d, containers %d", len(pm.GetMetrics()), len(pm.GetContainerMetrics()))
	}
	// No quota: no CFS counters, as cAdvisor.
	s.metrics.(fakeMetrics).cgroups["/kubepods/podu1/c1"].Limits.CPUQuotaMicros = 0
	resp, err = s.ListPodSandboxMetrics(context.Background(), &criapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range resp.GetPodMetrics()[0].GetContainerMetrics()[0].GetMetrics() {
		switch m.GetName() {
		case "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
			"container_cpu_cfs_throttled_seconds_total", "container_spec_cpu_quota":
			t.Errorf("%s without a quota", m.GetName())
		}
	}
}

func TestListPodSandboxMetricsSharedParent(t *testing.T) {
	for _, c := range []struct {
		name  string
		other *sandbox.Pod // another pod's record, in any state
		root  string       // the daemon's cgroup_root
	}{
		{"crib's cgroup root", nil, "/kubepods/podu1"},
		{"the default cgroup root", nil, ""},
		{"a parent given twice", &sandbox.Pod{ID: "pod2", CgroupParent: "/kubepods/podu1", State: sandbox.StateNotReady}, "/crib"},
		{"a parent above another", &sandbox.Pod{ID: "pod2", CgroupParent: "/kubepods/podu1/inner", State: sandbox.StateReady}, "/crib"},
	} {
		s, pod, _ := metricsWorld()
		s.opts.CgroupRoot = c.root
		if c.root == "" {
			pod.CgroupParent = cgroups.DefaultRoot
			fm := s.metrics.(fakeMetrics)
			fm.cgroups[cgroups.DefaultRoot] = fullCgroup(1)
		}
		if c.other != nil {
			s.sandboxes = fakeSandboxes{pods: []*sandbox.Pod{pod, c.other}}
		}
		resp, err := s.ListPodSandboxMetrics(context.Background(), &criapi.ListPodSandboxMetricsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// Only the interfaces are the pod's own; the containers keep theirs.
		pm := resp.GetPodMetrics()[0]
		for _, m := range pm.GetMetrics() {
			if !strings.HasPrefix(m.GetName(), "container_network_") {
				t.Errorf("%s: pod-level %s from a shared parent", c.name, m.GetName())
			}
		}
		if len(pm.GetMetrics()) != 8 || len(pm.GetContainerMetrics()) != 1 {
			t.Errorf("%s: %d pod metrics, %d containers", c.name, len(pm.GetMetrics()), len(pm.GetContainerMetrics()))
		}
	}
}

func TestListPodSandboxMetricsNoReader(t *testing.T) {
	s, _, _ := metricsWorld()
	s.metrics = nil
	_, err := s.ListPodSandboxMetrics(context.Background(), &criapi.ListPodSandboxMetricsRequest{})
	if !errdefs.IsNotImplemented(err) {
		t.Errorf("without a reader: %v", err)
	}
}

// TestListPodSandboxMetricsUnreadableCgroup: a container whose cgroup
// cannot be read is left out; the node's other metrics still come.
func TestListPodSandboxMetricsUnreadableCgroup(t *testing.T) {
	s, _, _ := metricsWorld()
	fm := s.metrics.(fakeMetrics)
	fm.broken = map[string]bool{"/kubepods/podu1/c1": true}
	s.metrics = fm
	resp, err := s.ListPodSandboxMetrics(context.Background(), &criapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatalf("one unreadable cgroup failed the whole list: %v", err)
	}
	if pm := resp.GetPodMetrics(); len(pm) != 1 || len(pm[0].GetContainerMetrics()) != 0 || len(pm[0].GetMetrics()) == 0 {
		t.Errorf("want the pod's own metrics and no container's: %v", pm)
	}
}
