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
#   hack/kind.sh e2e NAME NODES  the e2e subset against a cluster
#   hack/kind.sh systemd-test NAME  the systemd cgroup driver's integration
#                              test inside NAME's control-plane node
#   hack/kind.sh delete NAME   delete one cluster
#   hack/kind.sh env           the lines that point docker, kind and kubectl here
#   hack/kind.sh docker-down   delete every cluster, stop dockerd, leave no
#                              container, network, mount or rule behind
#   hack/kind.sh all           what make kind runs: docker-up, images, the
#                              clusters and the e2e subset, docker-down, and
#                              a check that the host's iptables rules did
#                              not change
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
		for c in $("$kind" get clusters 2>/dev/null); do delete "$c" || true; done
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

# host_rules prints the host's iptables rules (nft and legacy) without
# their counters.
host_rules() {
	{ iptables-save; iptables-legacy-save; } 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
}

# check_rules fails if the host's iptables rules differ from what all()
# found before it started.
check_rules() {
	host_rules | diff "$out/iptables.before" - >&2 ||
		die "the host's iptables rules changed (above)"
}

# check_clean fails if anything of Docker's is left on the host.
check_clean() {
	local left=
	grep -qF -e "$data/" -e "$run/" /proc/self/mountinfo && left+=" mounts"
	ip link show crib-kind0 >/dev/null 2>&1 && left+=" bridge crib-kind0"
	ip -o link show | grep -q ' veth.*master crib-kind0' && left+=" veths"
	# Docker's cgroup parent, and what the nodes' systemd and kubelet made
	# under their own cgroups, which runc does not remove: empty by now,
	# removed deepest first.
	local d
	for d in /sys/fs/cgroup/*/crib-kind /sys/fs/cgroup/crib-kind; do
		[[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	compgen -G '/sys/fs/cgroup/*/crib-kind' >/dev/null && left+=" cgroups"
	[[ -d /sys/fs/cgroup/crib-kind ]] && left+=" cgroups"
	[[ -z $left ]] || die "left behind:$left"
}

# create RUNTIME NODES [NAME]
create() {
	local runtime=$1 nodes=$2 name=${3:-$1-$2} config start
	config=$(mktemp "$out/kind-$name.XXXXXX.yaml")
	cluster_config "$runtime" "$nodes" >"$config"
	start=$(date +%s%N)
	# Its kubeconfig goes to _output/kind/NAME.kubeconfig, not ~/.kube/config.
	"$kind" create cluster --name "$name" --image "$runtime-node:$version" --config "$config" --wait 10m --retain \
		--kubeconfig "$out/$name.kubeconfig" ||
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
	local name=$1 runtime=$2 nodes=$3
	k() { kubectl --kubeconfig "$out/$name.kubeconfig" "$@"; }
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

delete() {
	"$kind" delete cluster --name "$1" --kubeconfig "$out/$1.kubeconfig"
	rm -f "$out/$1.kubeconfig"
}

# systemd_test NAME: the systemd cgroup driver's integration test
# (cgroups/systemd TestSystemdScope) inside NAME's control-plane node, where
# systemd is PID 1: scopes made, limited, updated and removed for real.
systemd_test() {
	local node=$1-control-plane bin=$out/bin/systemd.test
	(cd "$repo" && go test -c -o "$bin" ./cgroups/systemd/)
	# Through exec, not docker cp, which writes beneath the node's mounts
	# (/var is a volume; /tmp and /run are noexec tmpfs).
	docker exec -i "$node" sh -c 'cat >/var/tmp/systemd.test && chmod 0700 /var/tmp/systemd.test' <"$bin"
	docker exec "$node" env CRIB_SYSTEMD_TEST=1 /var/tmp/systemd.test -test.run TestSystemdScope -test.v -test.count=1 >"$out/systemd-test.log" 2>&1 ||
		{ cat "$out/systemd-test.log" >&2; die "TestSystemdScope failed in $node"; }
	docker exec "$node" rm -f /var/tmp/systemd.test
	grep -E '^(--- |ok|PASS)' "$out/systemd-test.log" >&2
}

# The Kubernetes e2e specs make kind runs: [Conformance] specs, not [Serial]
# or [Disruptive], about pods, exec, logs, services, DNS, secrets and config
# maps, init containers, probes and security contexts; and kubectl's port
# forwarding and logs specs, which are not [Conformance] (no port-forward
# spec is).
e2e_labels='(Conformance || sig-cli) && !Serial && !Disruptive && !Slow && !Flaky'
e2e_focus='\[sig-node\] (Pods|InitContainer|Probing container|Security Context|ConfigMap|Secrets|Container Lifecycle Hook|Downward API)|\[sig-network\] (Services|DNS)|\[sig-storage\] (ConfigMap|Secrets|Projected)|\[sig-cli\] Kubectl (logs|client Kubectl logs|Port forwarding)'

# e2e NAME NODES: loads the e2e suite's images into every node (kind load,
# as a user would) and runs the specs above, 4 at a time; the report goes to
# _output/kind/e2e/NAME.
e2e() {
	local name=$1 nodes=$2
	local images=$out/e2e-images report=$out/e2e/$name rc=0
	"$repo/hack/clients.sh" e2e.test ginkgo agnhost kubectl
	if [[ ! -f $images/.done ]]; then
		rm -rf "$images"
		mkdir -p "$images"
		local dns_rootfs
		dns_rootfs=$("$repo/hack/kind-image.sh" rootfs bind9-dnsutils dnsutils)
		(cd "$repo" && CRIB_KIND_E2E_IMAGES=$images CRIB_KIND_DNS_ROOTFS=$dns_rootfs \
			go test -count=1 -tags kind -run TestWriteE2EImages ./test/kind/ >/dev/null) ||
			die "building the e2e images failed"
		touch "$images/.done"
	fi
	for t in "$images"/*.tar; do
		"$kind" load image-archive "$t" --name "$name" || die "kind load image-archive $t into $name failed"
	done
	[[ -f $out/$name.kubeconfig ]] || "$kind" export kubeconfig --name "$name" --kubeconfig "$out/$name.kubeconfig" >/dev/null 2>&1
	rm -rf "$report"
	mkdir -p "$report"
	log "e2e on $name: $(date -u +%H:%M:%S)"
	"$repo/_output/clients/ginkgo" --procs=4 --timeout=90m --no-color --label-filter="$e2e_labels" --focus="$e2e_focus" \
		--junit-report=junit.xml --output-dir="$report" \
		"$repo/_output/clients/e2e.test" -- \
		--provider=skeleton --kubeconfig="$out/$name.kubeconfig" --num-nodes="$nodes" \
		--kubectl-path="$repo/_output/clients/kubectl" \
		--report-dir="$report" --disable-log-dump >"$report/e2e.log" 2>&1 || rc=$?
	grep -E '^(Ran |FAIL|SUCCESS|Test Suite)|Passed \|' "$report/e2e.log" | tail -5 >&2
	return $rc
}

env_() {
	echo "export DOCKER_HOST=$DOCKER_HOST"
	echo "export PATH=$out/bin:$repo/_output/clients:/usr/bin:\$PATH"
}

images() {
	"$repo/hack/kind-image.sh" crib
	"$repo/hack/kind-image.sh" containerd
}

# all: what make kind runs. For crib, then containerd: a one-node cluster
# (Ready, kube-proxy and CoreDNS running) deleted again, then a three-node
# cluster that runs the e2e subset. Docker comes down at the end, also on
# failure, and nothing is left (docker_down and check_rules check). Fails if
# a cluster does not come up or crib fails a spec.
all() {
	local rc=0 crib_e2e=0
	# The host's rules, to show that nothing here added one.
	host_rules >"$out/iptables.before"
	docker_up
	trap 'docker_down; check_rules' EXIT
	images
	rm -f "$out/create-times" "$out/e2e-images/.done"
	for runtime in crib containerd; do
		create "$runtime" 1
		[[ $runtime == crib ]] && systemd_test "$runtime-1"
		delete "$runtime-1"
		create "$runtime" 3
		if ! e2e "$runtime-3" 3; then
			[[ $runtime == crib ]] && crib_e2e=1
			log "e2e on $runtime-3 had failures: $out/e2e/$runtime-3"
		fi
		delete "$runtime-3"
	done
	log "cluster create times (name runtime nodes ms):"
	cat "$out/create-times" >&2
	((crib_e2e == 0)) || { log "crib failed e2e specs: $out/e2e/crib-3/e2e.log"; rc=1; }
	return $rc
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
e2e) e2e "$@" ;;
systemd-test) systemd_test "$@" ;;
delete) delete "$@" ;;
env) env_ ;;
all) all ;;
clean) clean ;;
help | -h | --help) help ;;
*) help >&2; exit 2 ;;
esac
