#!/usr/bin/env bash
# The Kubernetes node conformance specs ([NodeConformance], without the
# serial, slow and flaky ones) against crib and against Debian's
# containerd + runc, side by side on this host (test/nodee2e: each node in
# a network and mount namespace of its own, images from a loopback test
# registry), so both meet the same load. Reports and logs go to
# _output/conformance/<runtime>/. It fails if a spec fails on crib that is
# not an expected failure (test/nodee2e), or that passes on containerd.
# Takes about an hour on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$PWD/_output/conformance
rm -rf "$out"
mkdir -p "$out"
declare -A pid
for rt in crib containerd; do
	CRIB_NODE_E2E_RUNTIME=$rt CRIB_NODE_E2E_FOCUS=conformance CRIB_NODE_E2E_ARTIFACTS=$out \
		go test -count=1 -v -timeout 3h -run '^TestNodeE2E$' ./test/nodee2e/ >"$out/$rt.txt" 2>&1 &
	pid[$rt]=$!
done
status=0
for rt in crib containerd; do
	# containerd's failures are the baseline, not a verdict on crib.
	wait "${pid[$rt]}" || [[ $rt == containerd ]] || status=1
	echo "conformance: node e2e against $rt"
	grep -E 'node e2e on|expected failure|ran for' "$out/$rt.txt" || tail -20 "$out/$rt.txt"
done
go run ./hack/specdiff crib="$out/crib/report/report.json" containerd="$out/containerd/report/report.json" || status=1
exit $status
