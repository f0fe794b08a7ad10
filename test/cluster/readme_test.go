//go:build cluster

package cluster

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// readmeBlock returns the shell block of the README's "A one-node cluster"
// section.
func readmeBlock(t *testing.T, repo string) string {
	t.Helper()
	s := harness.ReadmeSection(t, repo, "A one-node cluster")
	i := strings.Index(s, "```sh\n")
	if i < 0 {
		t.Fatal("README's cluster section has no ```sh block")
	}
	s = s[i+len("```sh\n"):]
	return s[:strings.Index(s, "```")]
}

// TestReadme runs the README's cluster walk-through line by line, as a
// person would paste it (stdin at its end: the interactive shell exits at
// once), with the cluster's directory and name the test's own and every
// pull going to the test registry. Its first line, up, is run by the test,
// which must start the registry in the cluster's namespace before the
// walk-through pulls; its last, down, is run as written, and the test then
// checks that nothing is left.
func TestReadme(t *testing.T) {
	repo := testregistry.RepoRoot(t)
	block := readmeBlock(t, repo)
	first, rest, _ := strings.Cut(block, "\n")
	if f := strings.Fields(first); len(f) < 2 || f[0] != "hack/local-cluster.sh" || f[1] != "up" {
		t.Fatalf("the README's walk-through starts with %q, not hack/local-cluster.sh up", first)
	}
	lines := strings.Split(strings.TrimSpace(rest), "\n")
	if f := strings.Fields(lines[len(lines)-1]); len(f) < 2 || f[0] != "hack/local-cluster.sh" || f[1] != "down" {
		t.Fatalf("the README's walk-through ends with %q, not hack/local-cluster.sh down", lines[len(lines)-1])
	}
	c := startCluster(t, "crib", newRegistry(t))
	cmd := exec.Command("bash", "-O", "expand_aliases", "-o", "pipefail", "-exc", rest)
	cmd.Dir, cmd.Env = repo, c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	c.down = true // the last line ran down, or the walk-through failed before it
	t.Logf("walk-through:\n%s\nstdout:\n%s", stderr.String(), stdout.String())
	if err != nil {
		c.down = false
		t.Fatalf("the README's cluster walk-through failed: %v", err)
	}
	out := stdout.String()
	for _, re := range []string{
		`(?m)^crib-node\s+Ready\s`,                           // get nodes
		`(?m)^hello from crib$`,                              // logs hello
		`(?m)^shell$`,                                        // exec cat /etc/hostname
		`(?m)^\s*1 root\s+sleep 3600$`,                       // debug --target: ps, pid 1 is the target's
		`(?m)^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d UTC \d{4}$`, // logs -f ticker
		`(?m)^web$`,                                          // port-forward, curl /hostname
		`deployment "many" successfully rolled out`,
		`(?m)^job done$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("the walk-through's output has no match for %s", re)
		}
	}
}
