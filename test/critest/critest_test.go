package critest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// skips are the specs crib does not run yet, each owned by the issue that
// will make it pass and empty its entry. They are the only specs skipped on
// purpose; critest skips others by itself (AppArmor on a host without it,
// NRI without -nri-socket, features the runtime does not advertise) and the
// report says which.
var skips = []struct {
	spec  string // regexp on the spec's full text
	issue string
}{}

// expectedFailures may fail; a pass is fine too.
var expectedFailures = []harness.ExpectedFailure{
	{Spec: `Image Manager public image with digest should be pulled and removed`,
		Reason: "pulls test-image-digest by the digest of an upstream manifest; no image built offline can have it"},
}

// critestTimeout bounds the suite (make test gives all packages 15 minutes).
const critestTimeout = 12 * time.Minute

// TestCritest runs cri-tools' CRI validation suite against crib: the daemon
// and critest share a network namespace with the bridge CNI config (critest
// reaches pod addresses and the host ports 12000-12003 it maps there) and an
// IPC namespace (the HostIpc spec makes a shared memory segment with ipcmk,
// which outlives critest; it goes with the namespace). Images come from the
// test registry through a "_default" mirror. Every failed spec fails the test
// with its message, except expectedFailures.
func TestCritest(t *testing.T) {
	testutil.RequireRoot(t)
	critest := filepath.Join(testregistry.RepoRoot(t), "_output", "clients", "critest")
	if _, err := os.Stat(critest); err != nil {
		testutil.SkipOrFail(t, "critest is not built: run hack/clients.sh critest")
		return
	}
	reg := testregistry.Start(t)
	reg.PushCritestImages(t)

	e := harness.NewEnv(t)
	// The init of a hostUsers: false pod's container is root only in the
	// pod's user namespace and must search down to the daemon's state dir
	// (a node's /run is 0755; MkdirTemp made this 0700).
	if err := os.Chmod(e.Dir, 0o711); err != nil {
		t.Fatal(err)
	}
	e.WithNetwork(fmt.Sprintf("10.87.%d.0/24", rand.IntN(200)+20))
	// critest's NRI plugins hold Synchronize for 2 s on purpose; with
	// NRI's default 2 s request timeout they are dropped and those specs
	// skip themselves ("spec discrepancy").
	e.NRI = `plugin_request_timeout = "10s"`
	mirror := reg.ListenIn(t, "/run/netns/"+e.Netns)
	e.WriteConfig(fmt.Sprintf("\n[registry.hosts.\"_default\"]\nskip_server = true\n"+
		"[[registry.hosts.\"_default\".mirrors]]\nendpoint = \"http://%s\"\n", mirror))
	e.Bin = ipcWrapper(t, e.Dir)
	d := e.Start()
	if dir := os.Getenv("CRIB_CRITEST_ARTIFACTS"); dir != "" {
		t.Cleanup(func() { keepArtifacts(t, dir, e.Dir, d) })
	}
	t.Cleanup(func() { harness.RemoveLeftPods(t, d.Clients().Runtime) }) // runs first

	report := filepath.Join(e.Dir, "critest.json")
	out, err := os.Create(filepath.Join(e.Dir, "critest.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), critestTimeout)
	defer cancel()
	sock := "unix://" + e.Sock
	args := []string{"--net=/run/netns/" + e.Netns, fmt.Sprintf("--ipc=/proc/%d/ns/ipc", d.Pid()), critest,
		"-runtime-endpoint", sock, "-image-endpoint", sock, "-nri-socket", e.NRISock,
		"-ginkgo.json-report", report, "-ginkgo.no-color"}
	if s := skipRegexp(); s != "" {
		args = append(args, "-ginkgo.skip", s)
	}
	// A person chasing one spec runs only the specs matching this.
	if f := os.Getenv("CRIB_CRITEST_FOCUS"); f != "" {
		args = append(args, "-ginkgo.focus", f)
	}
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	// critest writes temporary files (seccomp profiles, log directories)
	// under TMPDIR; keep them in the env's directory.
	cmd.Env = append(os.Environ(), "TMPDIR="+e.Dir)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("critest ran for %s (output: %s)", time.Since(start).Round(time.Second), out.Name())

	specs, err := harness.ReadGinkgoReport(report)
	if err != nil {
		tail, _ := os.ReadFile(out.Name())
		t.Fatalf("critest (%v) left no report: %v\n%s", runErr, err, harness.LastLines(string(tail), 60))
	}
	var skip *regexp.Regexp
	if s := skipRegexp(); s != "" {
		skip = regexp.MustCompile(s)
	}
	failed := harness.JudgeSpecs(t, "critest", specs, skip, expectedFailure)
	if os.Getenv("CRIB_CRITEST_FOCUS") == "" || regexp.MustCompile(os.Getenv("CRIB_CRITEST_FOCUS")).MatchString("NRI") {
		checkNRISpecs(t, specs)
	}
	if runErr != nil && failed == 0 {
		tail, _ := os.ReadFile(out.Name())
		t.Errorf("critest exited with %v and no failed spec\n%s", runErr, harness.LastLines(string(tail), 60))
	}
}

// nriSpecs is how many NRI specs critest v1.37 has.
const nriSpecs = 13

// checkNRISpecs fails the test unless every NRI spec ran and passed: they
// skip themselves when the runtime falls short of NRI's contract (no
// container name, a plugin dropped during synchronisation), which must
// not pass for a run.
func checkNRISpecs(t *testing.T, specs []harness.Spec) {
	t.Helper()
	passed := 0
	for _, s := range specs {
		if !strings.HasPrefix(s.Name, "NRI ") {
			continue
		}
		if s.State == "passed" {
			passed++
			continue
		}
		t.Errorf("NRI spec %s: %s, want passed\n    %s", s.Name, s.State, s.Message)
	}
	if passed != nriSpecs {
		t.Errorf("%d NRI specs passed, want all %d", passed, nriSpecs)
	}
}

// keepArtifacts copies critest's output and report and the daemon's log to
// dir ($CRIB_CRITEST_ARTIFACTS), for a CI job or a person diagnosing a run.
func keepArtifacts(t *testing.T, dir, envDir string, d *harness.Daemon) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Error(err)
		return
	}
	for _, name := range []string{"critest.log", "critest.json"} {
		if b, err := os.ReadFile(filepath.Join(envDir, name)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "crib.log"), []byte(d.Logs.String()), 0o644)
}

// skipRegexp joins the skip list into ginkgo's -skip pattern.
func skipRegexp() string {
	var parts []string
	for _, s := range skips {
		parts = append(parts, "("+s.spec+")")
	}
	return strings.Join(parts, "|")
}

// expectedFailure is the reason expectedFailures gives for a spec.
var expectedFailure = harness.Expected(expectedFailures)

func TestExpectedFailures(t *testing.T) {
	if _, ok := expectedFailure("Image Manager public image with digest should be pulled and removed [Conformance]"); !ok {
		t.Error("the digest spec is not an expected failure")
	}
	if _, ok := expectedFailure("Container runtime should support basic operations on container runtime should support execSync [Conformance]"); ok {
		t.Error("execSync is an expected failure")
	}
}

// ipcWrapper writes a script that runs crib in an IPC namespace of its own,
// for Env.Bin. unshare execs crib, so the daemon's pid is the script's.
func ipcWrapper(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "crib-in-ipcns")
	script := fmt.Sprintf("#!/bin/sh\nexec unshare --ipc %q \"$@\"\n", harness.Binary())
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
