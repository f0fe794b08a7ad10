//go:build cluster

package cluster

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkClusterScale20 compares crib with Debian's containerd + runc in
// the same cluster (hack/local-cluster.sh, CRIB_CLUSTER_RUNTIME=containerd
// for the comparison): each iteration runs `kubectl scale` of a Deployment
// of busybox sleepers from 1 to 20 replicas and measures until the
// Deployment reports 20 Ready replicas (the API polled every 50 ms), then
// scales back to 1 and waits for the 19 pods to be gone, untimed. The image
// is pulled before the first iteration. One cluster at a time: on a
// 2-core machine the other's control plane would be in the figures.
func BenchmarkClusterScale20(b *testing.B) {
	reg := newRegistry(b)
	for _, runtime := range []string{"crib", "containerd"} {
		c := startCluster(b, runtime, reg)
		c.apply(b, deployment("many", 1))
		c.kubectl(b, "rollout", "status", "deployment/many", "--timeout=180s")
		b.Run(runtime, func(b *testing.B) {
			var times []time.Duration
			for i := 0; i < b.N; i++ {
				times = append(times, c.scaleTo20(b, "many"))
				b.StopTimer()
				c.scaleTo1(b, "many")
				b.StartTimer()
			}
			slices.Sort(times)
			b.ReportMetric(times[len(times)/2].Seconds(), "s-median")
			b.ReportMetric(times[len(times)-1].Seconds(), "s-max")
			b.Logf("%s: scale 1→20 to all Ready: %v", runtime, times)
		})
		c.stop()
	}
}
