package spec

import specs "github.com/opencontainers/runtime-spec/specs-go"

// DefaultDeviceRules returns the device cgroup rules every non-privileged
// container gets: deny all, then allow the nodes every /dev has. `crib
// run-oci` adds the allows to a bundle's rules, as runc adds its built-in
// list.
func DefaultDeviceRules() []specs.LinuxDeviceCgroup { return defaultDeviceRules() }
