package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodSandboxMetrics drives the metrics RPCs the kubelet serves
// /metrics/cadvisor from (PodAndContainerStatsFromCRI) and critest checks:
// every metric returned is described, with as many label values as keys,
// and the values are what the pod did: CPU burnt, memory used, a file
// written, packets sent, the limits it was given.
func TestPodSandboxMetrics(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)

	descs, err := w.c.Runtime.ListMetricDescriptors(ctx)
	if err != nil {
		t.Fatalf("ListMetricDescriptors: %v", err)
	}
	keys := map[string][]string{}
	for _, d := range descs {
		if d.GetHelp() == "" || len(d.GetLabelKeys()) == 0 {
			t.Errorf("descriptor %v has no help or no label keys", d)
		}
		keys[d.GetName()] = d.GetLabelKeys()
	}

	pod, podID := w.runPod(t, "metrics", criapi.NamespaceMode_POD)
	ps, err := w.c.Runtime.PodSandboxStatus(ctx, podID, false)
	if err != nil || ps.GetStatus().GetNetwork().GetIp() == "" {
		t.Fatalf("pod status %v, %v", ps, err)
	}
	// yes burns CPU (half a CPU under the quota) until the pod goes.
	id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "burn"},
		Image:    &criapi.ImageSpec{Image: w.image},
		Command:  []string{"sh", "-c", "echo data > /written; yes > /dev/null & exec sleep 3600"},
		LogPath:  "burn.log",
		Linux: &criapi.LinuxContainerConfig{Resources: &criapi.LinuxContainerResources{
			CpuPeriod: 100000, CpuQuota: 50000, MemoryLimitInBytes: 64 << 20}},
	}, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Traffic on eth0: ARP and a SYN to the bridge (the gateway), which
	// answers with a reset. Whether wget fails does not matter.
	ip := ps.GetStatus().GetNetwork().GetIp()
	gw := ip[:strings.LastIndexByte(ip, '.')] + ".1"
	if _, _, err := w.c.Runtime.ExecSync(ctx, id, []string{"sh", "-c", "wget -q -T 2 -O /dev/null http://" + gw + ":1/; true"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// The CPU counter is in whole seconds: wait for the first.
	var podMetrics, ctrMetrics []*criapi.Metric
	deadline := time.Now().Add(90 * time.Second)
	for {
		podMetrics, ctrMetrics = listMetrics(t, w, podID, id)
		if find(ctrMetrics, "container_cpu_usage_seconds_total", "total") >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CPU second counted in 90 s: %v", ctrMetrics)
		}
		time.Sleep(500 * time.Millisecond)
	}

	for _, m := range append(append([]*criapi.Metric{}, podMetrics...), ctrMetrics...) {
		k, ok := keys[m.GetName()]
		if !ok {
			t.Errorf("metric %s has no descriptor", m.GetName())
		} else if len(k) != len(m.GetLabelValues()) {
			t.Errorf("metric %s: values %q for keys %q", m.GetName(), m.GetLabelValues(), k)
		}
	}
	cgroup := pod.Linux.CgroupParent + "/" + id
	wantLabels := []string{"burn", cgroup, w.image, id, "e2e", "metrics"}
	for _, m := range ctrMetrics {
		if got := m.GetLabelValues()[:len(wantLabels)]; strings.Join(got, "|") != strings.Join(wantLabels, "|") {
			t.Fatalf("%s labels %q, want %q first", m.GetName(), got, wantLabels)
		}
	}

	now := uint64(time.Now().Unix())
	for _, c := range []struct {
		name     string
		extra    []string
		min, max uint64
	}{
		{"container_memory_usage_bytes", nil, 1, 64 << 20},
		{"container_memory_working_set_bytes", nil, 1, 64 << 20},
		{"container_spec_memory_limit_bytes", nil, 64 << 20, 64 << 20},
		{"container_spec_cpu_quota", nil, 50000, 50000},
		{"container_spec_cpu_period", nil, 100000, 100000},
		{"container_cpu_cfs_periods_total", nil, 1, 1 << 40},
		// sh's children: yes and sleep, maybe sh itself still.
		{"container_processes", nil, 2, 5},
		{"container_threads", nil, 2, 5},
		{"container_file_descriptors", nil, 1, 1 << 20},
		{"container_ulimits_soft", []string{"max_open_files"}, 1, 1 << 40},
		{"container_fs_usage_bytes", nil, 1, 1 << 40},
		{"container_fs_limit_bytes", nil, 1, 1 << 62},
		{"container_start_time_seconds", nil, uint64(before.Unix()), now},
		{"container_last_seen", nil, uint64(before.Unix()), now},
	} {
		if v := find(ctrMetrics, c.name, c.extra...); v < c.min || v > c.max {
			t.Errorf("container %s%q = %d, want %d..%d", c.name, c.extra, v, c.min, c.max)
		}
	}
	// The pod's own metrics: its cgroup parent holds the container, its
	// interface carried the traffic.
	for _, c := range []struct {
		name  string
		extra []string
		min   uint64
	}{
		{"container_cpu_usage_seconds_total", []string{"total"}, 1},
		{"container_memory_usage_bytes", nil, 1},
		{"container_processes", nil, 2},
		{"container_network_transmit_bytes_total", []string{"eth0"}, 1},
		{"container_network_transmit_packets_total", []string{"eth0"}, 1},
		{"container_network_receive_bytes_total", []string{"eth0"}, 1},
	} {
		if v := find(podMetrics, c.name, c.extra...); v < c.min {
			t.Errorf("pod %s%q = %d, want >= %d", c.name, c.extra, v, c.min)
		}
	}
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}

	// A pod without a cgroup parent (crictl's) gets a level of its own
	// under crib's cgroup root: its figures are its own.
	bare := w.podConfig("bare", criapi.NamespaceMode_POD)
	bare.Linux.CgroupParent = ""
	bareID, err := w.c.Runtime.RunPodSandbox(ctx, bare, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.c.Runtime.StopPodSandbox(context.Background(), bareID)
		_ = w.c.Runtime.RemovePodSandbox(context.Background(), bareID)
	})
	sleeper := w.container(t, bareID, bare, "sleeper", "sleep", "3600")
	podMetrics, ctrMetrics = listMetrics(t, w, bareID, sleeper)
	if !has(podMetrics, "container_network_transmit_packets_total", "eth0") || find(ctrMetrics, "container_memory_usage_bytes") == 0 ||
		find(podMetrics, "container_memory_usage_bytes") < find(ctrMetrics, "container_memory_usage_bytes") ||
		find(ctrMetrics, "container_processes") != 1 {
		t.Errorf("pod without a parent: pod %v, container %v", podMetrics, ctrMetrics)
	}
}

// listMetrics returns the pod's own metrics and one container's.
func listMetrics(t *testing.T, w *podWorld, podID, ctrID string) (pod, ctr []*criapi.Metric) {
	t.Helper()
	all, err := w.c.Runtime.ListPodSandboxMetrics(context.Background())
	if err != nil {
		t.Fatalf("ListPodSandboxMetrics: %v", err)
	}
	for _, pm := range all {
		if pm.GetPodSandboxId() != podID {
			continue
		}
		for _, cm := range pm.GetContainerMetrics() {
			if cm.GetContainerId() == ctrID {
				return pm.GetMetrics(), cm.GetMetrics()
			}
		}
		t.Fatalf("pod %s has no metrics of container %s: %v", podID, ctrID, pm)
	}
	t.Fatalf("no metrics of pod %s in %v", podID, all)
	return nil, nil
}

// lookup returns the first metric name whose extra label values (after
// the six base ones) start with extra, nil if there is none.
func lookup(ms []*criapi.Metric, name string, extra ...string) *criapi.Metric {
	for _, m := range ms {
		lv := m.GetLabelValues()
		if m.GetName() == name && len(lv) >= 6+len(extra) && strings.Join(lv[6:6+len(extra)], "|") == strings.Join(extra, "|") {
			return m
		}
	}
	return nil
}

func has(ms []*criapi.Metric, name string, extra ...string) bool {
	return lookup(ms, name, extra...) != nil
}

// find returns the value of lookup's metric, 0 when there is none.
func find(ms []*criapi.Metric, name string, extra ...string) uint64 {
	return lookup(ms, name, extra...).GetValue().GetValue()
}
