package cri

import (
	"context"
	"slices"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// metricLabels are the label keys every metric starts with: cAdvisor's, as
// the kubelet sets them (container and pod names, the cgroup as id, the
// runtime's container id as name), so that dashboards built on the
// kubelet's /metrics/cadvisor keep working when the runtime serves them.
var metricLabels = []string{"container", "id", "image", "name", "namespace", "pod"}

// metricDef is one metric crib reports: cAdvisor's name, help text, type
// and extra label keys.
type metricDef struct {
	name, help string
	typ        criapi.MetricType
	extra      []string
}

const (
	counter = criapi.MetricType_COUNTER
	gauge   = criapi.MetricType_GAUGE
)

// metricDefs are every metric ListPodSandboxMetrics may return, and only
// those (a unit test holds the two together). Seconds are whole seconds:
// the CRI carries metric values as unsigned integers.
var metricDefs = []metricDef{
	{"container_last_seen", "Last time a container was seen by the exporter", gauge, nil},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, nil},

	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", counter, []string{"cpu"}},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", counter, nil},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", counter, nil},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, nil},
	{"container_spec_cpu_period", "CPU period of the container.", gauge, nil},
	{"container_spec_cpu_quota", "CPU quota of the container.", gauge, nil},
	{"container_spec_cpu_shares", "CPU share of the container.", gauge, nil},

	{"container_memory_cache", "Number of bytes of page cache memory.", gauge, nil},
	{"container_memory_rss", "Size of RSS in bytes.", gauge, nil},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, nil},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil},
	{"container_memory_swap", "Container swap usage in bytes.", gauge, nil},
	{"container_memory_failcnt", "Number of memory usage hits limits", counter, nil},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", gauge, nil},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", gauge, nil},
	{"container_memory_working_set_bytes", "Current working set in bytes.", gauge, nil},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, []string{"failure_type", "scope"}},
	{"container_oom_events_total", "Count of out of memory events observed for the container", counter, nil},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, nil},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, nil},
	{"container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", gauge, nil},

	{"container_processes", "Number of processes running inside the container.", gauge, nil},
	{"container_threads", "Number of threads running inside the container", gauge, nil},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", gauge, nil},
	{"container_file_descriptors", "Number of open file descriptors for the container.", gauge, nil},
	{"container_sockets", "Number of open sockets for the container.", gauge, nil},
	{"container_ulimits_soft", "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice", gauge, []string{"ulimit"}},

	{"container_blkio_device_usage_total", "Blkio Device bytes usage", counter, []string{"device", "major", "minor", "operation"}},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read", counter, []string{"device"}},
	{"container_fs_reads_total", "Cumulative count of reads completed", counter, []string{"device"}},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written", counter, []string{"device"}},
	{"container_fs_writes_total", "Cumulative count of writes completed", counter, []string{"device"}},
	{"container_fs_inodes_free", "Number of available Inodes", gauge, []string{"device"}},
	{"container_fs_inodes_total", "Number of Inodes", gauge, []string{"device"}},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, []string{"device"}},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, []string{"device"}},

	{"container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.", counter, nil},
	{"container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.", counter, nil},
	{"container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.", counter, nil},
	{"container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.", counter, nil},
	{"container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.", counter, nil},
	{"container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", counter, nil},

	{"container_network_receive_bytes_total", "Cumulative count of bytes received", counter, []string{"interface"}},
	{"container_network_receive_packets_total", "Cumulative count of packets received", counter, []string{"interface"}},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", counter, []string{"interface"}},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", counter, []string{"interface"}},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", counter, []string{"interface"}},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted", counter, []string{"interface"}},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", counter, []string{"interface"}},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", counter, []string{"interface"}},
}

// metricTypes maps a metric's name to its type, for emitting it.
var metricTypes = func() map[string]criapi.MetricType {
	m := make(map[string]criapi.MetricType, len(metricDefs))
	for _, d := range metricDefs {
		m[d.name] = d.typ
	}
	return m
}()

// ListMetricDescriptors describes every metric ListPodSandboxMetrics
// returns. The kubelet reads them once, when its metrics endpoint starts,
// and drops any metric it has no descriptor for.
func (s *Server) ListMetricDescriptors(context.Context, *criapi.ListMetricDescriptorsRequest) (*criapi.ListMetricDescriptorsResponse, error) {
	out := make([]*criapi.MetricDescriptor, 0, len(metricDefs))
	for _, d := range metricDefs {
		out = append(out, &criapi.MetricDescriptor{Name: d.name, Help: d.help,
			LabelKeys: append(slices.Clip(metricLabels), d.extra...)})
	}
	return &criapi.ListMetricDescriptorsResponse{Descriptors: out}, nil
}
