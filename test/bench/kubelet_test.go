package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// kubeletPods is how many static pods each iteration starts at once.
const kubeletPods = 10

// BenchmarkKubeletPodStart compares crib with Debian's containerd + runc
// under a real kubelet (v1.37, built by hack/clients.sh): each iteration
// writes 10 static pod manifests of one busybox `sleep` container and
// measures until the runtime reports all 10 containers RUNNING (polled
// through CRI every 5 ms, so the kubelet's 1 s PLEG relist does not round
// the figure), then removes the manifests and waits for the containers to
// stop. The image is pulled beforehand; the kubelet and the runtime share a
// network namespace with the same bridge CNI config.
func BenchmarkKubeletPodStart(b *testing.B) {
	kubelet, err := filepath.Abs("../../_output/clients/kubelet")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := exec.LookPath(kubelet); err != nil {
		b.Fatalf("the kubelet is not built: run make clients (%v)", err)
	}
	bed := newTestbed(b)
	reg, busybox, pause := bed.reg, bed.busybox, bed.pause

	b.Run("crib", func(b *testing.B) {
		e := newEnv(b)
		e.WithNetwork(fmt.Sprintf("10.92.%d.0/24", rand.IntN(100)))
		host := reg.ListenIn(b, "/run/netns/"+e.Netns)
		c := e.Start().Clients()
		kubeletRun(b, kubelet, "unix://"+e.Sock, e.Netns, e.Dir, c.Runtime, c.Images, strings.Replace(busybox, reg.Host, host, 1))
	})
	b.Run("containerd", func(b *testing.B) {
		dir := b.TempDir()
		netns := fmt.Sprintf("crib-bench-ctrd-%x", rand.Int32())
		harness.AddNetwork(b, netns, filepath.Join(dir, "net.d"), filepath.Join(dir, "ipam"), fmt.Sprintf("10.93.%d.0/24", rand.IntN(100)))
		host := reg.ListenIn(b, "/run/netns/"+netns)
		sandbox := strings.Replace(pause, reg.Host, host, 1)
		ctrd := harness.StartContainerd(b, harness.ContainerdConfig{Registry: host, Netns: netns, CNIConfDir: filepath.Join(dir, "net.d"), SandboxImage: sandbox})
		if _, err := ctrd.Images.PullImage(context.Background(), &criapi.ImageSpec{Image: sandbox}, nil, nil); err != nil {
			b.Fatal(err)
		}
		kubeletRun(b, kubelet, "unix://"+ctrd.Sock, netns, dir, ctrd.Runtime, ctrd.Images, strings.Replace(busybox, reg.Host, host, 1))
	})
}

func kubeletRun(b *testing.B, kubelet, endpoint, netns, dir string, rt internalapi.RuntimeService, images internalapi.ImageManagerService, image string) {
	ctx := context.Background()
	if _, err := images.PullImage(ctx, &criapi.ImageSpec{Image: image}, nil, nil); err != nil {
		b.Fatal(err)
	}
	k := harness.StartKubelet(b, kubelet, endpoint, netns, filepath.Join(dir, "kubelet"), func() { harness.RemovePods(rt) })
	running := func() int {
		cs, err := rt.ListContainers(ctx, &criapi.ContainerFilter{State: &criapi.ContainerStateValue{State: criapi.ContainerState_CONTAINER_RUNNING}})
		if err != nil {
			b.Fatal(err)
		}
		return len(cs)
	}
	var starts []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for j := range kubeletPods {
			k.WriteManifest(fmt.Sprintf("p%d-%d", i, j), harness.StaticPod(fmt.Sprintf("p%d-%d", i, j),
				"  containers:\n  - name: sleep\n    image: "+image+"\n    imagePullPolicy: IfNotPresent\n    command: [sleep, '3600']\n"))
		}
		for running() < kubeletPods {
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("iteration %d: %d of %d containers running after 2 minutes\n%s", i, running(), kubeletPods, k.Logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
		starts = append(starts, time.Since(start))
		b.StopTimer()
		for j := range kubeletPods {
			k.RemoveManifest(fmt.Sprintf("p%d-%d", i, j))
		}
		deadline := time.Now().Add(2 * time.Minute)
		for running() > 0 {
			if time.Now().After(deadline) {
				b.Fatalf("iteration %d: containers still running 2 minutes after their manifests went", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.StartTimer()
	}
	reportPercentiles(b, "10pods-running", starts)
}
