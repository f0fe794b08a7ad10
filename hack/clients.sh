#!/usr/bin/env bash
# Builds the real CRI clients crib is tested against from their Go modules
# (hack/tools/go.mod pins them): crictl and critest from cri-tools, and the
# kubelet from k8s.io/kubernetes. Outputs go to _output/clients; a binary is
# rebuilt only when hack/tools/go.sum changed since it was built, because the
# kubelet alone takes about ten minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/tools"
out=$(cd ../.. && pwd)/_output/clients
mkdir -p "$out"
stamp=$(sha256sum go.mod go.sum | sha256sum | cut -c1-16)

want=("$@")
((${#want[@]})) || want=(crictl critest kubelet)

build() {
	local name=$1
	if [[ -x $out/$name && -f $out/$name.stamp && $(cat "$out/$name.stamp") == "$stamp" ]]; then
		return
	fi
	echo "clients: building $name"
	case $name in
	crictl) CGO_ENABLED=0 go build -trimpath -o "$out/crictl" sigs.k8s.io/cri-tools/cmd/crictl ;;
	# critest is cri-tools' Ginkgo suite compiled as a test binary, as its Makefile does.
	critest) CGO_ENABLED=0 go test -c -trimpath -o "$out/critest" sigs.k8s.io/cri-tools/cmd/critest ;;
	kubelet) CGO_ENABLED=0 go build -trimpath -o "$out/kubelet" k8s.io/kubernetes/cmd/kubelet ;;
	*) echo "clients: unknown client $name (crictl, critest, kubelet)" >&2; exit 2 ;;
	esac
	echo "$stamp" >"$out/$name.stamp"
}

for c in "${want[@]}"; do build "$c"; done
