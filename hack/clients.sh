#!/usr/bin/env bash
# Builds the real clients crib is tested against from their Go modules
# (hack/tools/go.mod pins them): crictl and critest from cri-tools; the
# kubelet, the node e2e suite (e2e_node.test) and agnhost, the control plane
# (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy),
# kubectl, kubeadm and the cluster e2e suite (e2e.test) from k8s.io/kubernetes
# and the etcd it pins; Ginkgo's CLI.
# Outputs go to _output/clients; a binary is rebuilt only when
# hack/tools/go.{mod,sum} or this script changed since it was built, because
# the kubelet alone takes about ten minutes on two cores. With no argument it builds what
# `make test` needs; `hack/clients.sh all` builds everything.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/tools"
out=$(cd ../.. && pwd)/_output/clients
mkdir -p "$out"
stamp=$(sha256sum go.mod go.sum "$self" | sha256sum | cut -c1-16)

want=("$@")
test_set=(crictl critest kubelet e2e_node.test ginkgo agnhost)
all_set=("${test_set[@]}" etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubeadm e2e.test)
((${#want[@]})) || want=("${test_set[@]}")
[[ ${want[*]} == all ]] && want=("${all_set[@]}")

# Kubernetes' binaries report the version their module is (its own build
# stamps it from git): kubeadm and the kubelet check each other's, and the
# e2e suites read the server's.
k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
k8s_minor=${k8s_version#v1.}
k8s_minor=${k8s_minor%%.*}
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
done

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
	kubelet | kube-apiserver | kube-controller-manager | kube-scheduler | kube-proxy | kubectl | kubeadm)
		CGO_ENABLED=0 go build -trimpath -ldflags "$k8s_ldflags" -o "$out/$name" "k8s.io/kubernetes/cmd/$name" ;;
	# The node e2e suite, compiled as Kubernetes' own build does (test binary).
	e2e_node.test) CGO_ENABLED=0 go test -c -trimpath -ldflags "$k8s_ldflags" -o "$out/e2e_node.test" k8s.io/kubernetes/test/e2e_node ;;
	# The cluster e2e suite, run against kind clusters (hack/kind.sh).
	e2e.test) CGO_ENABLED=0 go test -c -trimpath -ldflags "$k8s_ldflags" -o "$out/e2e.test" k8s.io/kubernetes/test/e2e ;;
	agnhost) CGO_ENABLED=0 go build -trimpath -ldflags=-s\ -w -o "$out/agnhost" k8s.io/kubernetes/test/images/agnhost ;;
	ginkgo) CGO_ENABLED=0 go build -trimpath -o "$out/ginkgo" github.com/onsi/ginkgo/v2/ginkgo ;;
	etcd) CGO_ENABLED=0 go build -trimpath -o "$out/etcd" ./etcd ;;
	*) echo "clients: unknown client $name (${all_set[*]}, or all)" >&2; exit 2 ;;
	esac
	echo "$stamp" >"$out/$name.stamp"
}

for c in "${want[@]}"; do build "$c"; done
