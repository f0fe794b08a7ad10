package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	internalapi "k8s.io/cri-api/pkg/apis"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// BenchmarkExec measures, against one running container per runtime, the
// latency of ExecSync of `true` and of a streaming exec round trip (the
// Exec RPC, then the SPDY session kubectl exec opens, running `true`).
// Both daemons run in the node's network namespace (the test client must
// reach their streaming servers) with a host-network pod.
func BenchmarkExec(b *testing.B) {
	bed := newTestbed(b)
	reg, busybox, pause, cg := bed.reg, bed.busybox, bed.pause, bed.cg
	b.Run("crib", func(b *testing.B) {
		freshKernel(b)
		c := newEnv(b).Start().Clients()
		execLoop(b, cg, c.Images, c.Runtime, busybox)
	})
	b.Run("containerd", func(b *testing.B) {
		freshKernel(b)
		dir := b.TempDir()
		ctrd := harness.StartContainerd(b, harness.ContainerdConfig{Registry: reg.Host, CNIConfDir: filepath.Join(dir, "net.d"), SandboxImage: pause})
		if _, err := ctrd.Images.PullImage(context.Background(), &criapi.ImageSpec{Image: pause}, nil, nil); err != nil {
			b.Fatal(err)
		}
		execLoop(b, cg, ctrd.Images, ctrd.Runtime, busybox)
	})
}

func execLoop(b *testing.B, cg interface{ Remove(string) error }, images internalapi.ImageManagerService,
	rt internalapi.RuntimeService, image string) {
	ctx := context.Background()
	if _, err := images.PullImage(ctx, &criapi.ImageSpec{Image: image}, nil, nil); err != nil {
		b.Fatal(err)
	}
	parent := fmt.Sprintf("/crib-bench-exec-%x", rand.Int64())
	b.Cleanup(func() { _ = cg.Remove(parent); harness.RemoveUnifiedTwin(parent) })
	host := &criapi.NamespaceOption{Network: criapi.NamespaceMode_NODE, Pid: criapi.NamespaceMode_CONTAINER}
	pod := &criapi.PodSandboxConfig{
		Metadata: &criapi.PodSandboxMetadata{Name: "exec", Namespace: "bench", Uid: fmt.Sprintf("%x", rand.Int64())},
		Linux: &criapi.LinuxPodSandboxConfig{CgroupParent: parent + "/podexec",
			SecurityContext: &criapi.LinuxSandboxSecurityContext{NamespaceOptions: host}},
	}
	podID, err := rt.RunPodSandbox(ctx, pod, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.StopPodSandbox(ctx, podID); _ = rt.RemovePodSandbox(ctx, podID) })
	id, err := rt.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "target"}, Image: &criapi.ImageSpec{Image: image},
		Command: []string{"sleep", "3600"},
		Linux:   &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{NamespaceOptions: host}},
	}, pod)
	if err != nil {
		b.Fatal(err)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		b.Fatal(err)
	}
	var syncTimes, streamTimes []time.Duration
	for b.Loop() {
		t := time.Now()
		if _, _, err := rt.ExecSync(ctx, id, []string{"true"}, 10*time.Second); err != nil {
			b.Fatalf("ExecSync: %v", err)
		}
		syncTimes = append(syncTimes, time.Since(t))
		t = time.Now()
		if err := streamTrue(ctx, rt, id); err != nil {
			b.Fatalf("streaming exec: %v", err)
		}
		streamTimes = append(streamTimes, time.Since(t))
	}
	reportPercentiles(b, "ExecSync", syncTimes)
	reportPercentiles(b, "exec-stream", streamTimes)
}

// streamTrue is one kubectl-exec-like session running `true`.
func streamTrue(ctx context.Context, rt internalapi.RuntimeService, id string) error {
	resp, err := rt.Exec(ctx, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true, Stderr: true})
	if err != nil {
		return err
	}
	return harness.Stream(ctx, resp.Url, remotecommand.StreamOptions{Stdout: discard{}, Stderr: discard{}})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
