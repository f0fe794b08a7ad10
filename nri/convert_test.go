package nri

import (
	"encoding/json"
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func goldenSpec(t *testing.T) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile("../cri/spec/testdata/pod_container.json")
	if err != nil {
		t.Skip(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestToAPIContainer(t *testing.T) {
	s := goldenSpec(t)
	c := toAPIContainer(Container{ID: "c", PodID: "p", Name: "n", Status: StatusRunning, Spec: s, Seccomp: "runtime/default"})
	if c.GetName() != "n" || len(c.GetArgs()) == 0 || c.GetLinux() == nil {
		t.Fatalf("container %v", c)
	}
	// A privileged container has no seccomp profile.
	s.Linux.Seccomp = nil
	if c := toAPIContainer(Container{ID: "c", Spec: s}); c.GetLinux().GetSeccompPolicy() != nil {
		t.Errorf("seccomp policy %v for a spec without one", c.GetLinux().GetSeccompPolicy())
	}
	_ = toAPIPod(Pod{ID: "p", Namespaces: map[string]string{"network": "/x"}})
}
