package clients

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// readmeWalkthrough returns the README's "Talking to it" section: its
// pod.json, its container.json and its shell block.
func readmeWalkthrough(t *testing.T) (pod, ctr []byte, script string) {
	t.Helper()
	s := harness.ReadmeSection(t, filepath.Join("..", ".."), "Talking to it")
	block := func(label, lang string) string {
		i := strings.Index(s, label)
		if i < 0 {
			t.Fatalf("README's walk-through has no %q", label)
		}
		rest := s[i:]
		open := strings.Index(rest, "```"+lang+"\n")
		if open < 0 {
			t.Fatalf("README: no ```%s block after %q", lang, label)
		}
		rest = rest[open+len("```"+lang+"\n"):]
		return rest[:strings.Index(rest, "```")]
	}
	i := strings.Index(s, "```sh\nexport CONTAINER_RUNTIME_ENDPOINT")
	if i < 0 {
		t.Fatal("README's walk-through has no ```sh block starting with export CONTAINER_RUNTIME_ENDPOINT")
	}
	script = s[i+len("```sh\n"):]
	script = script[:strings.Index(script, "```")]
	return []byte(block("`pod.json`:", "json")), []byte(block("`container.json`:", "json")), script
}

// TestReadmeCrictl runs the README's crictl walk-through line by line with
// crictl built from cri-tools, in crictl's documented shapes: no cgroup
// parent, no pause image. Only the socket and the pod's log directory are
// the test's own; busybox comes from a local registry through the daemon's
// _default mirror.
func TestReadmeCrictl(t *testing.T) {
	crictl := client(t, "crictl")
	podJSON, ctrJSON, script := readmeWalkthrough(t)

	reg := testregistry.Start(t)
	reg.Push(t, "library/busybox:latest", testregistry.Busybox(t, ""))
	e := harness.NewEnv(t)
	e.WithNetwork(fmt.Sprintf("10.89.%d.0/24", rand.IntN(200)+20))
	mirror := reg.ListenIn(t, "/run/netns/"+e.Netns)
	e.WriteConfig(fmt.Sprintf("\n[registry.hosts.\"_default\"]\nskip_server = true\n[[registry.hosts.\"_default\".mirrors]]\nendpoint = \"http://%s\"\n", mirror))
	e.Start()

	work := t.TempDir()
	var pod map[string]any
	if err := json.Unmarshal(podJSON, &pod); err != nil {
		t.Fatalf("README's pod.json: %v", err)
	}
	pod["log_directory"] = filepath.Join(work, "logs")
	podJSON, _ = json.Marshal(pod)
	if err := json.Unmarshal(ctrJSON, new(map[string]any)); err != nil {
		t.Fatalf("README's container.json: %v", err)
	}
	os.WriteFile(filepath.Join(work, "pod.json"), podJSON, 0o644)
	os.WriteFile(filepath.Join(work, "container.json"), ctrJSON, 0o644)

	script = strings.ReplaceAll(script, "unix:///run/crib/crib.sock", "unix://"+e.Sock)
	cmd := exec.Command("nsenter", "--net=/run/netns/"+e.Netns, "bash", "-o", "pipefail", "-exc", script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(crictl)+":"+os.Getenv("PATH"), "HOME="+work)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("walk-through:\n%s\nstdout:\n%s", stderr.String(), stdout.String())
	if err != nil {
		t.Fatalf("the README's crictl walk-through failed: %v", err)
	}
	out := stdout.String()
	harness.MustContain(t, out, "hello from crib", "docker.io/library/busybox", "RuntimeName")
	// inspect -o go-template --template '{{.info.pid}}' prints the container's pid.
	if !regexp.MustCompile(`(?m)^[1-9][0-9]*$`).MatchString(out) {
		t.Errorf("no pid line from crictl inspect -o go-template --template '{{.info.pid}}'")
	}
	// exec and port-forward read the pod's /etc/hostname: the node's
	// name, since pod.json sets none.
	node, _ := os.Hostname()
	if n := strings.Count(out, "\n"+node+"\n"); n != 2 {
		t.Errorf("the node's hostname %q appears %d times in the output, want 2 (exec, port-forward)", node, n)
	}
}
