#!/usr/bin/env bash
# kind clusters whose nodes run crib, and Debian's containerd for comparison
# (make kind). Everything runs against a Docker daemon of its own:
#
#   hack/kind.sh docker-up     start dockerd (Debian's docker.io): its own data
#                              root, socket and cgroup parent, no iptables
#                              rules, no IP forwarding, no default bridge
#   hack/kind.sh images        build crib-node and containerd-node
#                              (hack/kind-image.sh)
#   hack/kind.sh create RUNTIME NODES [NAME]
#                              a cluster of 1 or 3 nodes on crib|containerd,
#                              Ready, with kube-proxy and CoreDNS running
#   hack/kind.sh delete NAME   delete one cluster
#   hack/kind.sh env           the lines that point docker, kind and kubectl here
#   hack/kind.sh docker-down   delete every cluster, stop dockerd, leave no
#                              container, network, mount or rule behind
#   hack/kind.sh all           what make kind runs: docker-up, images, the
#                              clusters and the e2e subset, docker-down
#
# Docker's images and the build caches stay in $CRIB_KIND_DATA and
# _output/kind between runs; `hack/kind.sh clean` removes them.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/_output/kind
data=${CRIB_KIND_DATA:-/var/lib/crib-kind}
run=/run/crib-kind
export DOCKER_HOST=unix://$run/docker.sock
# Debian's Docker client, the same release as its daemon.
export PATH=/usr/bin:/usr/sbin:$PATH
# The nodes' network: a Docker bridge on an address range of its own.
network=kind
subnet=${CRIB_KIND_SUBNET:-172.29.0.0/24}
version=${CRIB_KIND_TAG:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo dev)}
kind=$out/bin/kind

log() { echo "kind: $*" >&2; }
die() {
	log "$*"
	exit 1
}

docker_up() {
	[[ $(id -u) == 0 ]] || die "needs root"
	command -v dockerd >/dev/null || die "dockerd is missing: hack/install-deps.sh --kind"
	mkdir -p "$data" "$run" "$out/bin"
	chmod 0700 "$data" "$run"
	if docker info >/dev/null 2>&1; then
		log "dockerd already up at $DOCKER_HOST"
		return
	fi
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$out/bin/runccaps" ./hack/kind/runccaps)
	log "starting dockerd ($data, $DOCKER_HOST)"
	# Its own containerd, state and socket; no change to the host's iptables
	# or forwarding; nodes get capabilities this host can grant (runccaps).
	setsid dockerd \
		--data-root "$data/docker" \
		--exec-root "$run/exec" \
		--pidfile "$run/docker.pid" \
		--host "$DOCKER_HOST" \
		--iptables=false --ip-forward=false --ip-masq=false --bridge=none \
		--cgroup-parent=/crib-kind \
		--exec-opt native.cgroupdriver=cgroupfs \
		--add-runtime "runccaps=$out/bin/runccaps" --default-runtime runccaps \
		--storage-driver overlay2 \
		>"$run/dockerd.log" 2>&1 </dev/null &
	for _ in $(seq 60); do
		docker info >/dev/null 2>&1 && break
		sleep 0.5
	done
	docker info >/dev/null 2>&1 || { tail -20 "$run/dockerd.log" >&2; die "dockerd did not come up"; }
	docker network inspect "$network" >/dev/null 2>&1 ||
		docker network create --driver bridge --subnet "$subnet" \
			-o com.docker.network.bridge.name=crib-kind0 "$network" >/dev/null
}

docker_down() {
	if docker info >/dev/null 2>&1; then
		for c in $("$kind" get clusters 2>/dev/null); do "$kind" delete cluster --name "$c" || true; done
		docker ps -aq | xargs -r docker rm -f >/dev/null
		docker network rm "$network" >/dev/null 2>&1 || true
	fi
	if [[ -f $run/docker.pid ]]; then
		pid=$(cat "$run/docker.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		kill -0 "$pid" 2>/dev/null && die "dockerd ($pid) did not stop"
	fi
	# What dockerd would have unmounted had it been able to: its own state only.
	grep -F -e "$data/" -e "$run/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$run"
	check_clean
}

# check_clean fails if anything of Docker's is left on the host.
check_clean() {
	local left=
	grep -qF -e "$data/" -e "$run/" /proc/self/mountinfo && left+=" mounts"
	ip link show crib-kind0 >/dev/null 2>&1 && left+=" bridge crib-kind0"
	ip -o link show | grep -q ' veth.*master crib-kind0' && left+=" veths"
	[[ -d /sys/fs/cgroup/cpu/crib-kind ]] && rmdir /sys/fs/cgroup/*/crib-kind 2>/dev/null
	compgen -G '/sys/fs/cgroup/*/crib-kind' >/dev/null && left+=" cgroups"
	[[ -z $left ]] || die "left behind:$left"
}

# create RUNTIME NODES [NAME]
create() {
	local runtime=$1 nodes=$2 name=${3:-$1-$2} config start
	config=$(mktemp "$out/kind-$name.XXXXXX.yaml")
	cluster_config "$runtime" "$nodes" >"$config"
	start=$(date +%s%N)
	"$kind" create cluster --name "$name" --image "$runtime-node:$version" --config "$config" --wait 10m --retain ||
		{ rm -f "$config"; dump "$name"; die "cluster $name did not come up"; }
	rm -f "$config"
	local ms=$((($(date +%s%N) - start) / 1000000))
	log "cluster $name created in $((ms / 1000)).$(printf %03d $((ms % 1000))) s"
	echo "$name $runtime $nodes $ms" >>"$out/create-times"
	check_cluster "$name" "$runtime" "$nodes"
}

# cluster_config RUNTIME NODES: hack/kind.yaml with NODES nodes (one
# control plane, the rest workers) and RUNTIME's socket.
cluster_config() {
	local runtime=$1 nodes=$2
	local sock=unix:///run/crib/crib.sock
	[[ $runtime == containerd ]] && sock=unix:///run/containerd/containerd.sock
	awk -v workers=$((nodes - 1)) -v sock="$sock" '
		{ gsub("unix:///run/crib/crib.sock", sock) }
		{ print }
		/^- role: control-plane$/ { for (i = 0; i < workers; i++) print "- role: worker" }
	' "$repo/hack/kind.yaml"
}

# check_cluster NAME RUNTIME NODES: every node Ready on RUNTIME, and
# kube-proxy and CoreDNS running.
check_cluster() {
	local name=$1 runtime=$2 nodes=$3 k
	k() { "$kind" export kubeconfig --name "$name" --kubeconfig "$out/$name.kubeconfig" >/dev/null 2>&1 && kubectl --kubeconfig "$out/$name.kubeconfig" "$@"; }
	kubectl() { "$repo/_output/clients/kubectl" "$@"; }
	k wait --for=condition=Ready nodes --all --timeout=5m >/dev/null || { dump "$name"; die "$name: nodes not Ready"; }
	# The kubelet writes RUNTIME://Unknown when the runtime's version is not
	# a semantic version.
	local runtimes
	runtimes=$(k get nodes -o jsonpath='{range .items[*]}{.status.nodeInfo.containerRuntimeVersion}{"\n"}{end}')
	[[ $(grep -c "^$runtime://[0-9]" <<<"$runtimes") == "$nodes" ]] || die "$name: nodes report runtimes: $runtimes"
	k -n kube-system rollout status daemonset/kube-proxy --timeout=5m >/dev/null || { dump "$name"; die "$name: kube-proxy not running"; }
	k -n kube-system rollout status deployment/coredns --timeout=5m >/dev/null || { dump "$name"; die "$name: CoreDNS not running"; }
	k get nodes -o wide >&2
	k -n kube-system get pods -o wide >&2
}

# dump NAME: what a failed cluster's nodes say, into _output/kind/logs/NAME.
dump() {
	local name=$1
	rm -rf "$out/logs/$name"
	"$kind" export logs --name "$name" "$out/logs/$name" >/dev/null 2>&1 && log "logs of $name in $out/logs/$name"
}

delete() { "$kind" delete cluster --name "$1"; }

env_() {
	echo "export DOCKER_HOST=$DOCKER_HOST"
	echo "export PATH=$out/bin:$repo/_output/clients:/usr/bin:\$PATH"
}

images() {
	"$repo/hack/kind-image.sh" crib
	"$repo/hack/kind-image.sh" containerd
}

clean() {
	docker_down
	rm -rf "$data" "$out"
}

help() { sed -n '2,/^set -e/p' "$0" | sed -e 's/^# \{0,1\}//' -e '/^set -e/d'; }

cmd=${1:-help}
shift || true
case $cmd in
docker-up) docker_up ;;
docker-down) docker_down ;;
images) images ;;
create) create "$@" ;;
delete) delete "$@" ;;
env) env_ ;;
clean) clean ;;
help | -h | --help) help ;;
*) help >&2; exit 2 ;;
esac
