package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/crib-runtime/crib/"

// rank is each layered tree's place: a package may import packages of its
// own tree and of trees ranked lower, nothing else. sandbox and runtime
// share a rank, so neither imports the other (cri passes what they share
// as plain values).
var rank = map[string]int{
	"cri":     4,
	"sandbox": 3, "runtime": 3, "nri": 3,
	"cgroups": 2, "rdt": 2, "blockio": 2, "nsexec": 2,
	"internal": 1,
}

// criImporters may import cri and its subpackages: the daemon's main wires
// it, tests drive it.
func mayImportCRI(p string) bool {
	return p == "cmd/crib" || tree(p) == "cri" || tree(p) == "test" || tree(p) == "hack"
}

// shimSide are the packages of the pod's shim, whose dependencies must not
// include the CRI: every package is paid for in every idle shim.
func shimSide(p string) bool {
	return p == "cmd/crib-shim" || p == "runtime/shim" || strings.HasPrefix(p, "runtime/shim/")
}

// wireImporters lists the packages outside runtime/ and cmd/ that import
// the shim's wire types (runtime/shimapi), with the reason each still
// does. A package that speaks a wire should convert at its edge; the test
// fails on a new importer and on an entry no longer needed.
var wireImporters = map[string]string{}

// metricsPkg is the one package that imports the Prometheus client: the
// metric definitions live together, and the packages that record define
// small observer interfaces it implements, so that a dependency of the
// daemon's endpoint reaches no domain package (nor the shim).
const metricsPkg = "internal/metrics"

// cdiPkg is the one package that imports the CDI library: cri hands it a
// spec and names, and the library's cache and edits stay behind it.
const (
	cdiPkg    = "internal/cdi"
	cdiModule = "tags.cncf.io/container-device-interface"
)

// nriModule is NRI's library: its wire types and its wazero runtime stop
// at package nri and its tree (the example plugin's policy), and the
// plugin and tests, whose plugins speak it; the shim links none of it.
const nriModule = "github.com/containerd/nri"

// nriViolation says why p may not import imp (a full import path), or "".
func nriViolation(p, imp string) string {
	if (imp == nriModule || strings.HasPrefix(imp, nriModule+"/")) && tree(p) != "nri" && tree(p) != "test" && p != "cmd/nri-rdt-class" {
		return fmt.Sprintf("%s imports %s: only nri speaks NRI; convert at its edge", p, imp)
	}
	return ""
}

// systemdPkg is the one package that speaks D-Bus to systemd (the systemd
// cgroup driver); the daemon alone links it, one connection per node, not
// the shim, which every pod pays for. (The shim links godbus's package
// all the same, unused, through github.com/opencontainers/cgroups, which
// cgroups imports for its memory+swap conversion.)
const systemdPkg = "cgroups/systemd"

// dbusModule says whether imp is of the D-Bus libraries.
func dbusModule(imp string) bool {
	return strings.HasPrefix(imp, "github.com/godbus/dbus") || strings.HasPrefix(imp, "github.com/coreos/go-systemd")
}

// dbusViolation says why p may not import imp (a full import path), or "".
func dbusViolation(p, imp string) string {
	if dbusModule(imp) && p != systemdPkg && tree(p) != "test" {
		return fmt.Sprintf("%s imports %s: only %s talks to systemd", p, imp, systemdPkg)
	}
	return ""
}

func tree(p string) string { first, _, _ := strings.Cut(p, "/"); return first }

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// list returns every package of the module but the test trees, paths
// relative to the module.
func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		p.ImportPath = strings.TrimPrefix(p.ImportPath, module)
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestImportDirection(t *testing.T) {
	var bad []string
	wire := map[string]bool{}
	for _, p := range list(t) {
		for _, imp := range p.Imports {
			if bad1 := promViolation(p.ImportPath, imp); bad1 != "" {
				bad = append(bad, bad1)
			}
			if bad1 := cdiViolation(p.ImportPath, imp); bad1 != "" {
				bad = append(bad, bad1)
			}
			if bad1 := nriViolation(p.ImportPath, imp); bad1 != "" {
				bad = append(bad, bad1)
			}
			if bad1 := dbusViolation(p.ImportPath, imp); bad1 != "" {
				bad = append(bad, bad1)
			}
			q, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if bad1 := violation(p.ImportPath, q); bad1 != "" {
				bad = append(bad, bad1)
			}
			if q == "runtime/shimapi" && tree(p.ImportPath) != "runtime" && tree(p.ImportPath) != "cmd" && tree(p.ImportPath) != "test" {
				wire[p.ImportPath] = true
			}
		}
		if shimSide(p.ImportPath) {
			for _, d := range p.Deps {
				if strings.HasPrefix(d, "k8s.io/cri-api/") || d == module+"cri" || strings.HasPrefix(d, module+"cri/") ||
					d == module+metricsPkg || strings.HasPrefix(d, "github.com/prometheus/") ||
					d == module+cdiPkg || strings.HasPrefix(d, cdiModule) ||
					d == module+"nri" || strings.HasPrefix(d, module+"nri/") || strings.HasPrefix(d, nriModule+"/") || strings.HasPrefix(d, "github.com/tetratelabs/wazero") ||
					d == module+systemdPkg {
					bad = append(bad, fmt.Sprintf("%s (the shim) depends on %s", p.ImportPath, d))
				}
			}
		}
	}
	for p := range wire {
		if _, ok := wireImporters[p]; !ok {
			bad = append(bad, fmt.Sprintf("%s imports runtime/shimapi, the shim's wire types: convert at runtime's edge", p))
		}
	}
	for p := range wireImporters {
		if !wire[p] {
			bad = append(bad, fmt.Sprintf("%s no longer imports runtime/shimapi: drop it from wireImporters", p))
		}
	}
	slices.Sort(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// mayLaunch says whether p may import runtime/launch, the setns path that
// starts processes in containers: the shim starts every one (inits,
// ExecSync, streaming execs), so that one place holds the reaper that keeps
// a joined pid from being reused; cmd/crib seals the binary and runs
// `crib run-oci`.
func mayLaunch(p string) bool {
	return shimSide(p) || p == "cmd/crib" || tree(p) == "test"
}

// violation says why p may not import q, or "".
func violation(p, q string) string {
	if tree(q) == "cri" && !mayImportCRI(p) {
		return fmt.Sprintf("%s imports %s: nothing imports cri but cmd/crib", p, q)
	}
	if q == "runtime/launch" && !mayLaunch(p) {
		return fmt.Sprintf("%s imports %s: processes are started in containers by the shim only", p, q)
	}
	rp, okp := rank[tree(p)]
	rq, okq := rank[tree(q)]
	if !okp || !okq || tree(p) == tree(q) {
		return ""
	}
	if rq >= rp {
		return fmt.Sprintf("%s imports %s: %s may import only %s", p, q, tree(p), below(rp))
	}
	return ""
}

// promViolation says why p may not import imp (a full import path), or "".
func promViolation(p, imp string) string {
	if strings.HasPrefix(imp, "github.com/prometheus/") && p != metricsPkg {
		return fmt.Sprintf("%s imports %s: only %s uses the Prometheus client; record through an observer interface", p, imp, metricsPkg)
	}
	return ""
}

// cdiViolation says why p may not import imp (a full import path), or "".
func cdiViolation(p, imp string) string {
	if (imp == cdiModule || strings.HasPrefix(imp, cdiModule+"/")) && p != cdiPkg {
		return fmt.Sprintf("%s imports %s: only %s uses the CDI library", p, imp, cdiPkg)
	}
	return ""
}

func below(r int) string {
	var names []string
	for n, rr := range rank {
		if rr < r {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ") + " and itself"
}

// TestViolation checks the rule on imports that must fail, so the test
// above cannot pass by checking nothing.
func TestViolation(t *testing.T) {
	for _, tc := range []struct {
		p, q string
		bad  bool
	}{
		{"cri", "runtime", false},
		{"cri", "cri/spec", false},
		{"cri/spec", "runtime/initmsg", false},
		{"runtime", "sandbox", true},
		{"sandbox", "runtime/shimapi", true},
		{"runtime/shimclient", "sandbox", true},
		{"cgroups", "runtime", true},
		{"internal/listener", "cgroups", true},
		{"runtime/shim", "cri", true},
		{"cmd/crib-shim", "cri/spec", true},
		{"cmd/crib", "cri", false},
		{"rdt", "cgroups", true},
		{"blockio", "cgroups", true},
		{"cri", "blockio", false},
		{"runtime/shim", "rdt", false},
		{"runtime", "runtime/launch", true},
		{"sandbox", "runtime/launch", true},
		{"runtime/shim", "runtime/launch", false},
		{"cmd/crib", "runtime/launch", false},
		{"cri", "nri", false},
		{"nri", "cri", true},
		{"nri", "sandbox", true},
		{"nri", "rdt", false},
		{"runtime", "nri", true},
	} {
		if got := violation(tc.p, tc.q) != ""; got != tc.bad {
			t.Errorf("%s imports %s: violation %v, want %v", tc.p, tc.q, got, tc.bad)
		}
	}
}

func TestNRIViolation(t *testing.T) {
	for _, tc := range []struct {
		p, imp string
		bad    bool
	}{
		{"nri", "github.com/containerd/nri/pkg/adaptation", false},
		{"test/e2e", "github.com/containerd/nri/pkg/stub", false},
		{"cri", "github.com/containerd/nri/pkg/api", true},
		{"cmd/crib", "github.com/containerd/nri/pkg/adaptation", true},
		{"cri", "github.com/containerd/nrifoo", false},
	} {
		if got := nriViolation(tc.p, tc.imp) != ""; got != tc.bad {
			t.Errorf("%s imports %s: violation %v, want %v", tc.p, tc.imp, got, tc.bad)
		}
	}
}

func TestPromViolation(t *testing.T) {
	for _, tc := range []struct {
		p, imp string
		bad    bool
	}{
		{"internal/metrics", "github.com/prometheus/client_golang/prometheus", false},
		{"cri", "github.com/prometheus/client_golang/prometheus", true},
		{"sandbox/cni", "github.com/prometheus/client_golang/prometheus/promhttp", true},
		{"cmd/crib", "github.com/prometheus/common/expfmt", true},
		{"cri", "google.golang.org/grpc", false},
	} {
		if got := promViolation(tc.p, tc.imp) != ""; got != tc.bad {
			t.Errorf("%s imports %s: violation %v, want %v", tc.p, tc.imp, got, tc.bad)
		}
	}
}

func TestDBusViolation(t *testing.T) {
	for _, tc := range []struct {
		p, imp string
		bad    bool
	}{
		{"cgroups/systemd", "github.com/coreos/go-systemd/v22/dbus", false},
		{"cgroups/systemd", "github.com/godbus/dbus/v5", false},
		{"cgroups", "github.com/godbus/dbus/v5", true},
		{"runtime/shim", "github.com/coreos/go-systemd/v22/dbus", true},
		{"cmd/crib", "github.com/coreos/go-systemd/v22/dbus", true},
		{"cmd/crib", "github.com/crib-runtime/crib/cgroups/systemd", false},
	} {
		if got := dbusViolation(tc.p, tc.imp) != ""; got != tc.bad {
			t.Errorf("%s imports %s: violation %v, want %v", tc.p, tc.imp, got, tc.bad)
		}
	}
}

func TestCDIViolation(t *testing.T) {
	for _, tc := range []struct {
		p, imp string
		bad    bool
	}{
		{"internal/cdi", "tags.cncf.io/container-device-interface/pkg/cdi", false},
		{"internal/cdi", "tags.cncf.io/container-device-interface/specs-go", false},
		{"cri", "tags.cncf.io/container-device-interface/pkg/cdi", true},
		{"cri/spec", "tags.cncf.io/container-device-interface/pkg/parser", true},
		{"cmd/crib", "tags.cncf.io/container-device-interface", true},
		{"cri", "github.com/crib-runtime/crib/internal/cdi", false},
	} {
		if got := cdiViolation(tc.p, tc.imp) != ""; got != tc.bad {
			t.Errorf("%s imports %s: violation %v, want %v", tc.p, tc.imp, got, tc.bad)
		}
	}
}
