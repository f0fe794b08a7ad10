// Command specdiff compares the ginkgo JSON reports of one suite run against
// two runtimes (hack/conformance.sh): it prints each one's counts and every
// spec that failed on the first and passed on the second, and exits 1 when
// there is one.
//
//	go run ./hack/specdiff crib=report.json containerd=report.json
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/crib-runtime/crib/test/harness"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: specdiff NAME=REPORT.json OTHER=REPORT.json")
		os.Exit(2)
	}
	var names [2]string
	var states [2]map[string]string
	for i, arg := range os.Args[1:] {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "specdiff: %q is not NAME=REPORT.json\n", arg)
			os.Exit(2)
		}
		specs, err := harness.ReadGinkgoReport(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "specdiff: %s: %v\n", name, err)
			os.Exit(2)
		}
		names[i], states[i] = name, map[string]string{}
		counts := map[string]int{}
		for _, s := range specs {
			states[i][s.Name] = s.State
			counts[s.State]++
		}
		fmt.Printf("%s: %d passed, %d failed, %d skipped (%d specs)\n", name, counts["passed"],
			len(specs)-counts["passed"]-counts["skipped"]-counts["pending"], counts["skipped"], len(specs))
	}
	var worse, better []string
	for spec, st := range states[0] {
		other := states[1][spec]
		switch {
		case st != "passed" && st != "skipped" && other == "passed":
			worse = append(worse, spec)
		case st == "passed" && other != "passed" && other != "skipped" && other != "":
			better = append(better, spec)
		}
	}
	sort.Strings(worse)
	sort.Strings(better)
	for _, s := range better {
		fmt.Printf("passes on %s, fails on %s: %s\n", names[0], names[1], s)
	}
	for _, s := range worse {
		fmt.Printf("FAILS on %s, passes on %s: %s\n", names[0], names[1], s)
	}
	if len(worse) > 0 {
		os.Exit(1)
	}
}
