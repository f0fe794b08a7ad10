package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/cgroups/ocires"
	criSpec "github.com/crib-runtime/crib/cri/spec"
	"github.com/crib-runtime/crib/internal/ocihook"
	"github.com/crib-runtime/crib/runtime/launch"
)

// withDefaultDevices returns r with the device rules runc would apply: the
// bundle's, then (unless they end up allowing every device) the allow list
// every container gets, as runc appends its built-in one. A bundle from
// `runc spec` denies every device and counts on that list for /dev/null;
// one without rules gets deny-all plus the list, as under runc.
func withDefaultDevices(r *specs.LinuxResources) *specs.LinuxResources {
	out := specs.LinuxResources{}
	if r != nil {
		out = *r
	}
	allowAll := false
	for _, d := range out.Devices {
		if (d.Type == "" || d.Type == "a") && d.Major == nil && d.Minor == nil {
			allowAll = d.Allow
		}
	}
	if !allowAll {
		defaults := criSpec.DefaultDeviceRules()
		out.Devices = append(append(defaults[:1:1], out.Devices...), defaults[1:]...)
	}
	return &out
}

// runOCI is a developer command: run an OCI bundle through the setns path in
// the foreground, as `runc run` does, so the path can be tested and
// benchmarked without the CRI server. Its exit code is the container's.
func runOCI(args []string) int {
	fs := flag.NewFlagSet("crib run-oci", flag.ContinueOnError)
	bundle := fs.String("bundle", ".", "bundle directory holding config.json")
	state := fs.String("state", "/run/crib", "state directory (the sealed crib binary lives here)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: crib run-oci [--bundle dir] [--state dir] <id>")
		return 2
	}
	code, err := runBundle(*bundle, *state, fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "crib run-oci:", err)
		return 1
	}
	return code
}

func runBundle(bundle, state, id string) (code int, retErr error) {
	spec, err := loadSpec(bundle)
	if err != nil {
		return 0, err
	}
	// Refused rather than skipped: a developer command that ran the
	// container without its hooks would hide what is missing.
	if hooks := ocihook.Each(spec.Hooks); len(hooks) > 0 {
		return 0, fmt.Errorf("config.json: %s: crib run-oci runs no OCI hooks (the pods' shims do)", hooks[0])
	}
	o, err := launch.OptionsFromSpec(spec)
	if err != nil {
		return 0, fmt.Errorf("config.json: %w", err)
	}
	o.Stdin, o.Stdout, o.Stderr = os.Stdin, os.Stdout, os.Stderr
	if o.Binary, err = launch.SealedBinary(filepath.Join(state, "bin")); err != nil {
		return 0, err
	}
	cgroup := spec.Linux.CgroupsPath
	if cgroup == "" {
		// One level, so removing it leaves nothing crib made behind.
		cgroup = "/crib-run-oci-" + id
	}
	res, err := ocires.Convert(withDefaultDevices(spec.Linux.Resources))
	if err != nil {
		return 0, err
	}
	host, err := cgroups.Detect("/proc/self/mountinfo")
	if err != nil {
		return 0, err
	}
	cg, err := manager.New(host, manager.Options{Skipped: func(sk cgroups.Skipped) {
		fmt.Fprintf(os.Stderr, "crib run-oci: skipped %s: %s\n", strings.Join(sk.Files, " "), sk.Reason)
	}})
	if err != nil {
		return 0, err
	}
	if err := cg.Create(cgroup, res); err != nil {
		return 0, err
	}
	defer func() {
		if err := cg.Remove(cgroup); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if o.Cgroup, err = cg.Placement(cgroup); err != nil {
		return 0, err
	}
	defer o.Cgroup.Close()
	return runProcess(o)
}

func runProcess(o launch.Options) (int, error) {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	defer signal.Stop(signals)
	p, err := launch.Start(context.Background(), o)
	if err != nil {
		return 0, err
	}
	if err := p.Exec(context.Background()); err != nil {
		_ = p.Signal(syscall.SIGKILL)
		_, _ = p.Wait()
		return 0, err
	}
	go func() {
		for sig := range signals {
			_ = p.Signal(sig.(syscall.Signal))
		}
	}()
	st, err := p.Wait()
	if err != nil {
		return 0, err
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return st.ExitCode(), nil
}

func loadSpec(bundle string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("parse %s/config.json: %w", bundle, err)
	}
	if spec.Root != nil && !filepath.IsAbs(spec.Root.Path) {
		abs, err := filepath.Abs(filepath.Join(bundle, spec.Root.Path))
		if err != nil {
			return nil, err
		}
		spec.Root.Path = abs
	}
	return &spec, nil
}
