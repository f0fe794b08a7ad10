package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
)

// Spec is one spec of a ginkgo JSON report.
type Spec struct {
	Name    string
	State   string
	Message string
}

// ReadGinkgoReport reads the It specs of a ginkgo JSON report (a list of
// suite reports; the fields used are stable across ginkgo v2). A failure
// outside an It (a BeforeSuite, say) is reported as a spec of its own.
func ReadGinkgoReport(path string) ([]Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var suites []struct {
		SpecReports []struct {
			ContainerHierarchyTexts []string
			LeafNodeType            string
			LeafNodeText            string
			State                   string
			Failure                 struct {
				Message  string
				Location struct {
					FileName   string
					LineNumber int
				}
			}
		}
	}
	if err := json.Unmarshal(b, &suites); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var specs []Spec
	for _, s := range suites {
		for _, r := range s.SpecReports {
			if r.LeafNodeType != "It" && r.State == "passed" {
				continue
			}
			name := strings.Join(append(r.ContainerHierarchyTexts, r.LeafNodeText), " ")
			if r.LeafNodeType != "It" {
				name = strings.TrimSpace(r.LeafNodeType + " " + name)
			}
			msg := Condense(r.Failure.Message)
			if r.Failure.Location.FileName != "" {
				msg += fmt.Sprintf("\n(at %s:%d)", filepath.Base(r.Failure.Location.FileName), r.Failure.Location.LineNumber)
			}
			specs = append(specs, Spec{Name: strings.TrimPrefix(name, "[k8s.io] "), State: r.State, Message: msg})
		}
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("%s has no specs", path)
	}
	return specs, nil
}

// JudgeSpecs logs how many of a suite's specs passed, failed and were
// skipped (by the suite itself, or by skipList, which may be nil), and fails
// the test with the message of each failed spec that expected (which says
// why a spec may fail) does not excuse. It returns the number of failed
// specs, excused or not.
func JudgeSpecs(t testing.TB, suite string, specs []Spec, skipList *regexp.Regexp, expected func(name string) (reason string, ok bool)) int {
	t.Helper()
	var failed []string
	counts := map[string]int{}
	for _, s := range specs {
		if s.State == "skipped" && skipList != nil && skipList.MatchString(s.Name) {
			counts["skip list"]++
		} else {
			counts[s.State]++
		}
		if s.State == "passed" || s.State == "skipped" || s.State == "pending" {
			continue
		}
		if reason, ok := expected(s.Name); ok {
			t.Logf("expected failure: %s (%s)", s.Name, reason)
			continue
		}
		failed = append(failed, fmt.Sprintf("%s [%s]\n    %s", s.Name, s.State, strings.ReplaceAll(strings.TrimSpace(s.Message), "\n", "\n    ")))
	}
	other := len(specs) - counts["passed"] - counts["failed"] - counts["skipped"] - counts["skip list"]
	t.Logf("%s: %d passed, %d failed, %d skipped by %s itself, %d by the skip list, %d other",
		suite, counts["passed"], counts["failed"], counts["skipped"], suite, counts["skip list"], other)
	if len(failed) > 0 {
		sort.Strings(failed)
		t.Errorf("%d %s specs failed:\n%s", len(failed), suite, strings.Join(failed, "\n"))
	}
	return len(specs) - counts["passed"] - counts["skipped"] - counts["skip list"] - counts["pending"]
}

// Condense drops the struct dump gomega prints after a gRPC error's text
// (forty lines of the status's fields) and cuts other values at 40 lines.
func Condense(msg string) string {
	var out []string
	lines := strings.Split(msg, "\n")
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		if !strings.Contains(lines[i], "rpc error:") || i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "{" {
			continue
		}
		indent := lines[i+1][:strings.Index(lines[i+1], "{")]
		for i++; i < len(lines) && lines[i] != indent+"}"; i++ {
		}
	}
	if len(out) > 40 {
		out = append(out[:40], "    … (the rest is in the suite's log)")
	}
	return strings.Join(out, "\n")
}

// LastLines is the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ExpectedFailure is a spec (a regexp on its full text) that may fail, and
// why; a pass is fine too.
type ExpectedFailure struct{ Spec, Reason string }

// Expected returns the reason list gives for the spec named name, for
// JudgeSpecs.
func Expected(list []ExpectedFailure) func(name string) (string, bool) {
	return func(name string) (string, bool) {
		for _, f := range list {
			if regexp.MustCompile(f.Spec).MatchString(name) {
				return f.Reason, true
			}
		}
		return "", false
	}
}

// RemoveLeftPods stops and removes every pod a suite left in the runtime
// (its kubelet, if any, is gone), so that no container outlives the test;
// what fails fails the test.
func RemoveLeftPods(t testing.TB, rt internalapi.RuntimeService) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods, err := rt.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Errorf("list the pods the suite left: %v", err)
		return
	}
	for _, p := range pods {
		t.Logf("removing pod %s (%s) that the suite left", p.GetId(), p.GetMetadata().GetName())
		if err := rt.StopPodSandbox(ctx, p.GetId()); err != nil {
			t.Errorf("stop pod %s: %v", p.GetId(), err)
		}
		if err := rt.RemovePodSandbox(ctx, p.GetId()); err != nil {
			t.Errorf("remove pod %s: %v", p.GetId(), err)
		}
	}
}
