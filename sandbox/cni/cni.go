// Package cni wraps libcni for crib's pod networking: finding and loading the
// network configuration, ADD (Setup) and DEL (Teardown).
//
// Plugins run as children of the calling thread and so start in its
// network namespace: the host side of the pod's network (bridge, host ends
// of veths, portmap rules) lands there. The daemon calls from the host's
// namespace; tests call from a namespace of their own (nsfs.Do).
//
// It knows no crib types beyond its own and must not import cri, runtime or
// cri-api. Internal to crib; no API compatibility promised.
package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"k8s.io/klog/v2"
)

// Network finds the network configuration in ConfDir and plugins in
// BinDirs, and keeps libcni's result cache in CacheDir.
type Network struct {
	ConfDir string
	BinDirs []string
	// CacheDir is where libcni keeps each attachment's ADD result and
	// config for DEL: crib's state dir (e.g. /var/lib/crib/cni), so it is
	// cleaned with crib's state. Empty means libcni's /var/lib/cni.
	CacheDir string
	// Observer, when set, learns how long each ADD and DEL took (the
	// daemon's metrics).
	Observer Observer
}

// Observer learns of each run of the plugins: operation is "ADD" or "DEL",
// took the time the plugins ran, err their failure.
type Observer interface {
	ObserveCNI(operation string, took time.Duration, err error)
}

// observe reports one run of the plugins for pod, started at start, to
// the Observer and the log: the plugins are often most of a pod's start
// and stop, and the time a runtime cannot shorten.
func (n Network) observe(ctx context.Context, operation, pod string, start time.Time, err error) {
	took := time.Since(start)
	klog.FromContext(ctx).V(2).Info("Ran CNI plugins", "operation", operation, "podSandboxID", pod, "duration", took, "failed", err != nil)
	if n.Observer != nil {
		n.Observer.ObserveCNI(operation, took, err)
	}
}

// ErrNoConfig reports that no usable network configuration was found.
var ErrNoConfig = errors.New("no network config found")

// Load returns the first configuration list in ConfDir in lexical file order,
// as the kubelet's CNI convention has it. Single-plugin .conf files are
// wrapped into a list.
func (n Network) Load() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(n.ConfDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("%w in %s: %w", ErrNoConfig, n.ConfDir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoConfig, n.ConfDir)
	}
	var errs []error
	for _, f := range files {
		list, err := loadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return list, nil
	}
	return nil, fmt.Errorf("%w in %s: %w", ErrNoConfig, n.ConfDir, errors.Join(errs...))
}

func loadFile(path string) (*libcni.NetworkConfigList, error) {
	if strings.HasSuffix(path, ".conflist") {
		list, err := libcni.ConfListFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		if len(list.Plugins) == 0 {
			return nil, fmt.Errorf("load %s: no plugins", path)
		}
		return list, nil
	}
	conf, err := libcni.ConfFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	list, err := libcni.ConfListFromConf(conf)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return list, nil
}

// Ready reports why pods cannot be networked yet: no loadable configuration,
// or a plugin it names missing from every bin dir. nil means ready.
func (n Network) Ready() error {
	list, err := n.Load()
	if err != nil {
		return err
	}
	for _, p := range list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, n.BinDirs); err != nil {
			return fmt.Errorf("network %q: plugin %q not found in %s: %w",
				list.Name, p.Network.Type, strings.Join(n.BinDirs, ":"), os.ErrNotExist)
		}
	}
	return nil
}
