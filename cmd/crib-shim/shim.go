package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"

	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/internal/hostfs"
	"github.com/crib-runtime/crib/runtime/shim"
)

// runShim is `crib-shim shim --dir <shim dir> [--log-level N]`: a shim
// process, started by the daemon through shimclient.Spawn, which then
// hands it the pods it serves.
func runShim(args []string) int {
	// One P and an eager GC: the shim mostly sleeps, and its idle heap is
	// paid once per shim process on the node.
	if os.Getenv("GOMAXPROCS") == "" {
		goruntime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	fs := flag.NewFlagSet("crib-shim shim", flag.ContinueOnError)
	dir := fs.String("dir", "", "the shim process's directory (its socket, log, sealed binary)")
	level := fs.Int("log-level", 2, "klog verbosity: 2 state changes, 4 steps")
	mountinfo := fs.String("mountinfo", "/proc/self/mountinfo", "where the host's cgroup and resctrl mounts are found (tests name a fake resctrl tree)")
	if err := fs.Parse(args); err != nil || *dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: crib-shim shim --dir <shim dir> [--log-level N] [--mountinfo FILE]")
		return 2
	}
	if *mountinfo != "/proc/self/mountinfo" {
		// It decides which directories the shim writes pids into.
		if err := hostfs.RootOnly(*mountinfo); err != nil {
			fmt.Fprintln(os.Stderr, "crib-shim shim:", err)
			return 2
		}
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", strconv.Itoa(*level))
	defer klog.Flush()
	ctx := klog.NewContext(context.Background(), klog.Background())
	if err := shim.Run(ctx, shim.Config{Dir: *dir, Mountinfo: *mountinfo}); err != nil {
		klog.ErrorS(err, "Shim failed", "dir", *dir)
		return 1
	}
	return 0
}
