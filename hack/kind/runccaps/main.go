// Command runccaps is the OCI runtime Docker is given for kind's node
// containers (hack/kind.sh): runc, after taking out of the bundle's
// config.json (create, run) or the process file (exec --process) every
// capability this host's bounding set lacks. Docker grants a privileged
// container or exec every capability it knows, and on a host whose bounding
// set is narrower (here: no CAP_SYS_RESOURCE) runc then fails with "unable
// to apply caps". Nothing else changes.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/crib-runtime/crib/cri/spec"
)

// runc is the runtime this wraps: Debian's.
const runc = "/usr/sbin/runc"

func main() {
	if file, inProcess, ok := specOf(os.Args[1:]); ok {
		if err := narrow(file, inProcess); err != nil {
			fmt.Fprintf(os.Stderr, "runccaps: %v\n", err)
			os.Exit(1)
		}
	}
	args := append([]string{runc}, os.Args[1:]...)
	err := syscall.Exec(runc, args, os.Environ())
	fmt.Fprintf(os.Stderr, "runccaps: exec %s: %v\n", runc, err)
	os.Exit(1)
}

// specOf finds the file that holds the capabilities runc will apply: the
// bundle's config.json of a create or run (--bundle DIR, --bundle=DIR, -b
// DIR), or the process file of an exec (--process FILE, -p FILE), whose
// capabilities are at its top level rather than under "process".
func specOf(args []string) (file string, topLevel bool, ok bool) {
	cmd, bundle, process := "", "", ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case cmd == "" && (a == "create" || a == "run" || a == "exec"):
			cmd = a
		case (a == "--bundle" || a == "-b") && i+1 < len(args):
			bundle = args[i+1]
			i++
		case strings.HasPrefix(a, "--bundle="):
			bundle = strings.TrimPrefix(a, "--bundle=")
		case (a == "--process" || a == "-p") && i+1 < len(args):
			process = args[i+1]
			i++
		case strings.HasPrefix(a, "--process="):
			process = strings.TrimPrefix(a, "--process=")
		}
	}
	switch {
	case (cmd == "create" || cmd == "run") && bundle != "":
		return filepath.Join(bundle, "config.json"), false, true
	case cmd == "exec" && process != "":
		return process, true, true
	}
	return "", false, false
}

// narrow removes from every capability set in the file the capabilities
// outside this process's bounding set.
func narrow(path string, topLevel bool) error {
	allowed, err := boundingSet()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	proc := spec
	if !topLevel {
		proc, _ = spec["process"].(map[string]any)
	}
	caps, _ := proc["capabilities"].(map[string]any)
	if caps == nil {
		return nil
	}
	for set, v := range caps {
		list, _ := v.([]any)
		kept := make([]any, 0, len(list))
		for _, c := range list {
			if name, _ := c.(string); allowed(name) {
				kept = append(kept, c)
			}
		}
		caps[set] = kept
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, fi.Mode().Perm())
}

// boundingSet returns a predicate for the capability names in CapBnd of
// /proc/self/status, named as crib names them (spec.CapsInMask). Names crib
// does not know are kept: runc judges them.
func boundingSet() (func(string) bool, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("CapBnd %q: %w", v, err)
		}
		held := spec.CapsInMask(mask)
		known := spec.CapsInMask(^uint64(0))
		return func(name string) bool {
			n := "CAP_" + strings.TrimPrefix(strings.ToUpper(name), "CAP_")
			return !slices.Contains(known, n) || slices.Contains(held, n)
		}, nil
	}
	return nil, fmt.Errorf("no CapBnd in /proc/self/status")
}
