// Package nri is crib's side of the Node Resource Interface
// (github.com/containerd/nri's adaptation): the plugin socket, pre-installed
// plugins, the events of pods and containers, the adjustments plugins make
// to a container's OCI spec, and the updates they ask for unsolicited.
//
// It is the only package that imports github.com/containerd/nri: its wire
// types stop here. Callers (cri/) hand it plain Pod and Container values and
// a Runtime it synchronises plugins from; it imports runtime-spec, errdefs,
// klog and internal/*, never sandbox, runtime or rdt. The shim never links
// it. A nil *NRI (NRI disabled) makes every method a no-op. See docs/nri.md.
// Internal to crib; no API compatibility promised.
package nri
