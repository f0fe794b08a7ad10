package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The daemon, built as `make build` builds it (hack/build.sh), links no package that looks
// methods up by name (text/template, html/template): one such call anywhere
// keeps every exported method of every reachable type in the binary, 3.8 MB
// more mapped by the daemon of every node.
func TestDaemonLinksNoMethodLookup(t *testing.T) {
	script, err := os.ReadFile("../../hack/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^tags=(\S+)`).FindSubmatch(script)
	if m == nil {
		t.Fatal("no tags= in hack/build.sh")
	}
	out, err := exec.Command("go", "list", "-deps", "-tags", string(m[1]), ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "text/template" || pkg == "html/template" {
			t.Errorf("the daemon links %s (tags %s): find what imports it (go list -deps -f '{{.ImportPath}}: {{.Imports}}')", pkg, m[1])
		}
	}
}
