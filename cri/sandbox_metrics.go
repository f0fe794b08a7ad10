package cri

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/hostfs"
	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox"
)

// MetricsReader reads what ListPodSandboxMetrics reports beyond the stats
// RPCs; the writable layers and interfaces come from Stats.
type MetricsReader interface {
	// CgroupMetrics reads a cgroup's stats, limits, block I/O and pids.
	CgroupMetrics(path string) (*cgroups.Metrics, error)
	// FDs counts the open descriptors of processes, and the sockets among them.
	FDs(pids []int) (fds, sockets uint64)
	// StorageFS is the filesystem the writable layers live on.
	StorageFS() (hostfs.Filesystem, error)
	// DeviceName names a block device for the device label ("/dev/sda").
	DeviceName(major, minor uint32) string
	// OpenFilesLimit is a process's soft RLIMIT_NOFILE; false when the
	// process is gone or unlimited.
	OpenFilesLimit(pid int) (uint64, bool)
}

// ListPodSandboxMetrics returns cAdvisor's metrics for every ready pod:
// its cgroup parent's (where that is the pod's alone) and interfaces' as
// the pod's own (container label ""), and each running container's from
// its cgroup and writable layer, as the kubelet's /metrics/cadvisor shows
// them with PodAndContainerStatsFromCRI.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, _ *criapi.ListPodSandboxMetricsRequest) (*criapi.ListPodSandboxMetricsResponse, error) {
	if s.metrics == nil {
		return nil, fmt.Errorf("list pod sandbox metrics: no metrics reader is configured: %w", errdefs.ErrNotImplemented)
	}
	now := time.Now()
	storage, err := s.metrics.StorageFS()
	if err != nil {
		return nil, fmt.Errorf("list pod sandbox metrics: %w", err)
	}
	all, err := s.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	byPod := map[string][]runtime.State{}
	for _, st := range all {
		if st.Status == runtime.StatusRunning {
			byPod[st.SandboxID] = append(byPod[st.SandboxID], st)
		}
	}
	var out []*criapi.PodSandboxMetrics
	pods := s.sandboxes.List(sandbox.Filter{})
	for _, pod := range pods {
		if pod.State != sandbox.StateReady {
			continue
		}
		// One pod or container that cannot be read (a privileged
		// container can make its cgroup unreadable, e.g. threaded) is left
		// out and logged: it must not take the node's metrics with it.
		pm, err := s.podMetrics(pod, s.ownsParent(pod, pods), now)
		if err != nil {
			if !gone(err) {
				klog.FromContext(ctx).Info("Pod left out of the metrics", "podSandboxID", pod.ID, "err", err)
			}
			continue
		}
		for _, st := range byPod[pod.ID] {
			cm, err := s.containerMetrics(pod, st, storage, now)
			if err != nil {
				if !gone(err) { // else exited or removed meanwhile
					klog.FromContext(ctx).Info("Container left out of the metrics", "containerID", st.ID, "err", err)
				}
				continue
			}
			pm.ContainerMetrics = append(pm.ContainerMetrics, cm)
		}
		out = append(out, pm)
	}
	return &criapi.ListPodSandboxMetricsResponse{PodMetrics: out}, nil
}

// gone says err is a cgroup, layer or namespace that went away while it
// was read: the pod or container stopped, which is no failure of the list.
func gone(err error) bool {
	return errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// ownsParent says the pod's cgroup parent holds this pod alone, as the
// kubelet's pod<uid> cgroups do, so that its figures are the pod's. crib's
// cgroup root, where pods that come without a parent go (crictl's), holds
// them all; a parent given to several pods, or above another pod's, holds
// theirs too.
func (s *Server) ownsParent(pod *sandbox.Pod, all []*sandbox.Pod) bool {
	if pod.CgroupParent == "" {
		return false
	}
	if root, err := s.cgroupPaths().Parent(""); err == nil && pod.CgroupParent == root {
		return false
	}
	for _, o := range all {
		if o.ID != pod.ID && (o.CgroupParent == pod.CgroupParent || strings.HasPrefix(o.CgroupParent, pod.CgroupParent+"/")) {
			return false
		}
	}
	return true
}

// podMetrics reads the pod's own metrics: its cgroup parent's (which holds
// every container) where the parent is the pod's own, and its network
// namespace's interfaces.
func (s *Server) podMetrics(pod *sandbox.Pod, ownParent bool, now time.Time) (*criapi.PodSandboxMetrics, error) {
	m := newMetricSet("", pod.CgroupParent, "", "", pod.Namespace, pod.Name)
	if ownParent {
		cg, err := s.metrics.CgroupMetrics(pod.CgroupParent)
		switch {
		case gone(err):
		case err != nil:
			return nil, err
		default:
			fds, sockets := s.metrics.FDs(cg.Procs)
			m.addCgroup(cg, fds, sockets, s.metrics.DeviceName)
			m.addTimes(pod.CreatedAt, now)
		}
	}
	if pod.NetNS != "" {
		ifs, err := s.stats.Network(pod.NetNS)
		switch {
		case gone(err):
		case err != nil:
			return nil, err
		default:
			m.addNetwork(ifs)
		}
	}
	return &criapi.PodSandboxMetrics{PodSandboxId: pod.ID, Metrics: m.out}, nil
}

// containerMetrics reads a running container's metrics from its cgroup and
// its writable layer.
func (s *Server) containerMetrics(pod *sandbox.Pod, st runtime.State, storage hostfs.Filesystem, now time.Time) (*criapi.ContainerMetrics, error) {
	cg, err := s.metrics.CgroupMetrics(st.Cgroup)
	if err != nil {
		return nil, err
	}
	used, _, err := s.stats.WritableLayer(st.ID)
	if err != nil {
		return nil, err
	}
	m := newMetricSet(st.Name, st.Cgroup, st.Image, st.ID, pod.Namespace, pod.Name)
	fds, sockets := s.metrics.FDs(cg.Procs)
	m.addCgroup(cg, fds, sockets, s.metrics.DeviceName)
	start := st.StartedAt
	if start.IsZero() {
		start = st.CreatedAt
	}
	m.addTimes(start, now)
	m.addFilesystem(storage, used)
	if n, ok := s.metrics.OpenFilesLimit(st.Pid); st.Pid > 0 && ok {
		m.add("container_ulimits_soft", n, "max_open_files")
	}
	return &criapi.ContainerMetrics{ContainerId: st.ID, Metrics: m.out}, nil
}

// metricSet collects the metrics of one pod or container, all with the
// same values for metricLabels.
type metricSet struct {
	labels []string
	out    []*criapi.Metric
}

func newMetricSet(container, id, image, name, namespace, pod string) *metricSet {
	return &metricSet{labels: []string{container, id, image, name, namespace, pod}}
}

// add appends one metric; extra are the values of its def's extra labels.
// Timestamp stays 0: the CRI's word for "read just now".
func (m *metricSet) add(name string, v uint64, extra ...string) {
	m.out = append(m.out, &criapi.Metric{Name: name, MetricType: metricTypes[name],
		LabelValues: append(slices.Clip(m.labels), extra...), Value: &criapi.UInt64Value{Value: v}})
}

// seconds turns ns into whole seconds, all an unsigned CRI value can hold.
func seconds(ns uint64) uint64 { return ns / uint64(time.Second) }

// addCgroup adds what a cgroup tells: CPU, memory, processes, limits,
// pressure and block I/O, in cAdvisor's terms.
func (m *metricSet) addCgroup(c *cgroups.Metrics, fds, sockets uint64, device func(major, minor uint32) string) {
	st, lim := &c.Stats, &c.Limits
	m.add("container_cpu_usage_seconds_total", seconds(st.CPU.UsageNanos), "total")
	m.add("container_cpu_user_seconds_total", seconds(st.CPU.UserNanos))
	m.add("container_cpu_system_seconds_total", seconds(st.CPU.SystemNanos))
	// As cAdvisor: CFS counters mean something only under a quota.
	if lim.CPUQuotaMicros != 0 {
		m.add("container_cpu_cfs_periods_total", st.CPU.Periods)
		m.add("container_cpu_cfs_throttled_periods_total", st.CPU.ThrottledPeriods)
		m.add("container_cpu_cfs_throttled_seconds_total", seconds(st.CPU.ThrottledNanos))
		m.add("container_spec_cpu_quota", lim.CPUQuotaMicros)
	}
	m.add("container_spec_cpu_period", lim.CPUPeriodMicros)
	m.add("container_spec_cpu_shares", lim.CPUShares)

	mem, d := &st.Memory, &c.Memory
	m.add("container_memory_cache", d.CacheBytes)
	m.add("container_memory_rss", mem.RSSBytes)
	m.add("container_memory_kernel_usage", d.KernelBytes)
	m.add("container_memory_mapped_file", d.MappedFileBytes)
	m.add("container_memory_swap", d.SwapBytes)
	m.add("container_memory_failcnt", d.Failcnt)
	m.add("container_memory_usage_bytes", mem.UsageBytes)
	m.add("container_memory_max_usage_bytes", d.MaxUsageBytes)
	m.add("container_memory_working_set_bytes", mem.WorkingSetBytes)
	// memory.stat's fault counters are hierarchical; cAdvisor reports
	// them under both scopes too.
	for _, scope := range []string{"container", "hierarchy"} {
		m.add("container_memory_failures_total", mem.PageFaults, "pgfault", scope)
		m.add("container_memory_failures_total", mem.MajorPageFaults, "pgmajfault", scope)
	}
	m.add("container_oom_events_total", c.OOMKills)
	m.add("container_spec_memory_limit_bytes", mem.LimitBytes)
	m.add("container_spec_memory_swap_limit_bytes", lim.SwapBytes)
	m.add("container_spec_memory_reservation_limit_bytes", lim.ReservationBytes)

	m.add("container_processes", uint64(len(c.Procs)))
	m.add("container_threads", st.Pids.Current)
	m.add("container_threads_max", st.Pids.Limit)
	m.add("container_file_descriptors", fds)
	m.add("container_sockets", sockets)

	if p := st.PSI; p != nil {
		for _, x := range []struct {
			res  string
			data cgroups.PSIData
		}{{"cpu", p.CPU}, {"memory", p.Memory}, {"io", p.IO}} {
			m.add("container_pressure_"+x.res+"_stalled_seconds_total", x.data.Full.TotalMicros/1e6)
			m.add("container_pressure_"+x.res+"_waiting_seconds_total", x.data.Some.TotalMicros/1e6)
		}
	}
	for _, io := range c.IO {
		dev := device(io.Major, io.Minor)
		maj, min := strconv.FormatUint(uint64(io.Major), 10), strconv.FormatUint(uint64(io.Minor), 10)
		m.add("container_blkio_device_usage_total", io.ReadBytes, dev, maj, min, "Read")
		m.add("container_blkio_device_usage_total", io.WriteBytes, dev, maj, min, "Write")
		m.add("container_fs_reads_bytes_total", io.ReadBytes, dev)
		m.add("container_fs_reads_total", io.Reads, dev)
		m.add("container_fs_writes_bytes_total", io.WriteBytes, dev)
		m.add("container_fs_writes_total", io.Writes, dev)
	}
}

// addTimes adds when the pod or container started and when it was seen.
func (m *metricSet) addTimes(start, now time.Time) {
	m.add("container_start_time_seconds", uint64(max(start.Unix(), 0)))
	m.add("container_last_seen", uint64(now.Unix()))
}

// addNetwork adds the counters of the pod's interfaces (loopback left out).
func (m *metricSet) addNetwork(ifs []sandbox.InterfaceStats) {
	for _, i := range ifs {
		m.add("container_network_receive_bytes_total", i.RxBytes, i.Name)
		m.add("container_network_receive_packets_total", i.RxPackets, i.Name)
		m.add("container_network_receive_packets_dropped_total", i.RxDropped, i.Name)
		m.add("container_network_receive_errors_total", i.RxErrors, i.Name)
		m.add("container_network_transmit_bytes_total", i.TxBytes, i.Name)
		m.add("container_network_transmit_packets_total", i.TxPackets, i.Name)
		m.add("container_network_transmit_packets_dropped_total", i.TxDropped, i.Name)
		m.add("container_network_transmit_errors_total", i.TxErrors, i.Name)
	}
}

// addFilesystem adds the container's writable layer and the filesystem it
// is on, which bounds it.
func (m *metricSet) addFilesystem(fs hostfs.Filesystem, used uint64) {
	m.add("container_fs_usage_bytes", used, fs.Device)
	m.add("container_fs_limit_bytes", fs.CapacityBytes, fs.Device)
	m.add("container_fs_inodes_total", fs.Inodes, fs.Device)
	m.add("container_fs_inodes_free", fs.InodesFree, fs.Device)
}
