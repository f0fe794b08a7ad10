//go:build cluster

package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// deployment is a Deployment of busybox sleepers: a pre-pulled image, and
// a grace period of 1 s (sleep as pid 1 ignores SIGTERM), so that scaling
// down does not wait 30 s for each pod.
func deployment(name string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: default}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sleep
        image: busybox
        imagePullPolicy: IfNotPresent
        command: [sleep, "3600"]
`, name, replicas)
}

// testScale20: a Deployment scaled from 1 to 20 replicas gets 20 Ready
// pods with 20 addresses, and scaled back to 1 leaves one pod, in the
// API and in the runtime.
func (c *cluster) testScale20(t *testing.T) {
	t.Parallel()
	c.apply(t, deployment("many", 1))
	c.kubectl(t, "rollout", "status", "deployment/many", "--timeout=180s")
	c.kubectl(t, "scale", "deployment/many", "--replicas=20")
	c.kubectl(t, "rollout", "status", "deployment/many", "--timeout=300s")
	ips := strings.Fields(c.kubectl(t, "get", "pods", "-l", "app=many", "--field-selector=status.phase=Running",
		"-o", "jsonpath={range .items[*]}{.status.podIP}{\" \"}{end}"))
	seen := map[string]bool{}
	for _, ip := range ips {
		if a := net.ParseIP(ip); a == nil || !strings.HasPrefix(ip, "10.244.0.") || seen[ip] {
			t.Errorf("pod address %q: not a new address in 10.244.0.0/24 (all: %v)", ip, ips)
		}
		seen[ip] = true
	}
	if len(ips) != 20 {
		t.Errorf("%d running pods of deployment many, want 20: %v", len(ips), ips)
	}
	if n := len(strings.Fields(c.crictl(t, "pods", "-q", "--state", "ready", "--label", "app=many"))); n != 20 {
		t.Errorf("the runtime has %d ready pods of deployment many, want 20", n)
	}

	c.kubectl(t, "scale", "deployment/many", "--replicas=1")
	waitFor(t, "deployment many back to 1 pod", 3*time.Minute, time.Second, func() (bool, string) {
		pods := strings.Fields(c.kubectl(t, "get", "pods", "-l", "app=many", "-o", "name"))
		return len(pods) == 1, strings.Join(pods, " ")
	})
	waitFor(t, "the runtime back to 1 ready pod of deployment many", time.Minute, time.Second, func() (bool, string) {
		out := c.crictl(t, "pods", "-q", "--state", "ready", "--label", "app=many")
		return len(strings.Fields(out)) == 1, out
	})
}

// scaleTo20 scales deployment name from 1 to 20 replicas and returns how
// long it took from the kubectl scale command to 20 Ready replicas, polled
// through the API every 50 ms.
func (c *cluster) scaleTo20(b *testing.B, name string) time.Duration {
	ctx := context.Background()
	start := time.Now()
	c.kubectl(b, "scale", "deployment/"+name, "--replicas=20")
	for {
		d, err := c.client.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == 20 {
			return time.Since(start)
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("deployment %s: %d of 20 replicas ready after 5 minutes", name, d.Status.ReadyReplicas)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scaleTo1 scales back and waits until the API and the runtime have one
// pod of the deployment left.
func (c *cluster) scaleTo1(b *testing.B, name string) {
	ctx := context.Background()
	c.kubectl(b, "scale", "deployment/"+name, "--replicas=1")
	waitFor(b, "deployment "+name+" back to 1 pod", 3*time.Minute, 200*time.Millisecond, func() (bool, string) {
		pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, err.Error()
		}
		return len(pods.Items) == 1, fmt.Sprintf("%d pods", len(pods.Items))
	})
}
