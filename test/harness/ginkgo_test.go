package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A report as ginkgo v2 writes it (trimmed): a failure in an It, one outside
// any It, a pass and a skip.
const sampleReport = `[{"SuiteDescription":"CRI validation","SpecReports":[
 {"ContainerHierarchyTexts":["[k8s.io] Container","runtime should support basic operations on container"],"LeafNodeType":"It",
  "LeafNodeText":"runtime should support execSync [Conformance]","State":"failed",
  "Failure":{"Message":"failed to start container\nUnexpected error:\n    <*status.Error | 0x1>: \n    rpc error: code = InvalidArgument desc = cgroup path \"x\" is not absolute\n    {\n        s: {\n            Code: 3,\n        },\n    }\noccurred","Location":{"FileName":"/x/pkg/validate/container.go","LineNumber":507}}},
 {"ContainerHierarchyTexts":null,"LeafNodeType":"BeforeSuite","LeafNodeText":"","State":"failed","Failure":{"Message":"no runtime"}},
 {"ContainerHierarchyTexts":["[k8s.io] Runtime info"],"LeafNodeType":"It","LeafNodeText":"runtime should return version info","State":"passed"},
 {"ContainerHierarchyTexts":null,"LeafNodeType":"AfterSuite","LeafNodeText":"","State":"passed"},
 {"ContainerHierarchyTexts":["[k8s.io] AppArmor"],"LeafNodeType":"It","LeafNodeText":"should work","State":"skipped"}]}]`

func TestReadReport(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.json")
	if err := os.WriteFile(p, []byte(sampleReport), 0o644); err != nil {
		t.Fatal(err)
	}
	specs, err := ReadGinkgoReport(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 4 {
		t.Fatalf("got %d specs, want 4 (the passed AfterSuite is not one): %+v", len(specs), specs)
	}
	exec := specs[0]
	if exec.Name != "Container runtime should support basic operations on container runtime should support execSync [Conformance]" || exec.State != "failed" {
		t.Errorf("first spec = %q %q", exec.Name, exec.State)
	}
	want := "failed to start container\nUnexpected error:\n    <*status.Error | 0x1>: \n" +
		"    rpc error: code = InvalidArgument desc = cgroup path \"x\" is not absolute\noccurred\n(at container.go:507)"
	if exec.Message != want {
		t.Errorf("message:\n%s\nwant:\n%s", exec.Message, want)
	}
	if specs[1].Name != "BeforeSuite" || specs[1].Message != "no runtime" {
		t.Errorf("a failed BeforeSuite reads as %+v", specs[1])
	}
	if long := Condense(strings.Repeat("line\n", 100)); strings.Count(long, "\n") != 40 {
		t.Errorf("a 100-line value condenses to %d lines, want 41", strings.Count(long, "\n")+1)
	}
}
