package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/config"
)

type noFiles struct{}

func (noFiles) Update(string, *cgroups.Resources) error { return errors.New("no files") }
func (noFiles) Mode() cgroups.Mode                      { return cgroups.ModeUnified }

// TestOpenUnits: cgroupfs needs no systemd; under systemd a cgroup_root
// that is no slice stops the daemon before anything is dialled.
func TestOpenUnits(t *testing.T) {
	cfg := config.Default()
	if u, err := openUnits(t.Context(), klog.Background(), cfg, noFiles{}); u != nil || err != nil {
		t.Fatalf("cgroupfs: %v, %v", u, err)
	}
	cfg.CgroupDriver, cfg.CgroupRoot = config.CgroupDriverSystemd, "/crib-pods"
	if _, err := openUnits(t.Context(), klog.Background(), cfg, noFiles{}); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "cgroup_root") {
		t.Fatalf("systemd with cgroup_root %s: %v, want FailedPrecondition naming cgroup_root", cfg.CgroupRoot, err)
	}
}

// TestSystemdDriverNeedsSystemd: on a node without systemd the daemon
// refuses the systemd driver at once, saying why.
func TestSystemdDriverNeedsSystemd(t *testing.T) {
	if systemdRunning() {
		t.Skip("systemd runs here")
	}
	cfg := config.Default()
	cfg.CgroupDriver = config.CgroupDriverSystemd
	err := serve(context.Background(), cfg, "", "/proc/self/mountinfo")
	if err == nil || !strings.Contains(err.Error(), "systemd is not running") || !strings.Contains(err.Error(), `cgroup_driver = "cgroupfs"`) {
		t.Fatalf("serve = %v, want the refusal", err)
	}
}
