#!/usr/bin/env bash
# A one-node Kubernetes cluster on crib, on this machine, for trying crib with
# kubectl and for its e2e tests (test/cluster):
#
#   hack/local-cluster.sh up        build (cached), make certificates, start
#                                   etcd, kube-apiserver, kube-controller-manager,
#                                   kube-scheduler, crib and a kubelet; wait for
#                                   the node to be Ready
#   hack/local-cluster.sh kubectl … kubectl against it
#   hack/local-cluster.sh shell     a shell inside the cluster's network (kubectl,
#                                   curl to pod IPs and to port-forwards);
#                                   shell -c CMD runs one command there
#   hack/local-cluster.sh build     only build what up runs
#   hack/local-cluster.sh env       the lines that make `kubectl` work in this shell
#   hack/local-cluster.sh down      stop everything and remove what up made, but
#                                   the logs and crib's images
#
# Everything runs inside a network namespace of its own (crib-cluster-NAME):
# the control plane listens there, pods get a bridge and addresses there, and
# the kubelet's iptables rules stay there, so nothing of the host's network
# changes and ports never clash with other clusters or tests. The kubelet and
# the runtime share a mount namespace that is a slave of the host's: the
# kubelet's volume mounts are visible to the runtime, and the kubelet's values
# for the non-namespaced kernel tunables it insists on are bound over their
# /proc/sys files there, so the host's are never changed. Cgroups live under
# /crib-cluster-NAME in every hierarchy. The namespace has no route out: the
# runtime pulls through an HTTP proxy (hack/egressproxy) that listens on the
# namespace's loopback and dials from the host's. No kube-proxy: there is no
# Service routing (pods and the control plane reach each other by address).
#
# Environment:
#   CRIB_CLUSTER_DIR      where everything lives (_output/local-cluster)
#   CRIB_CLUSTER_NAME     names the netns, cgroups and state dir (local)
#   CRIB_CLUSTER_MIRROR   host:port of a plain-HTTP registry that every pull
#                         goes to (test/cluster's registry); default: pull from
#                         the real registries
#   CRIB_CLUSTER_RUNTIME  crib (default), or containerd (Debian's, for comparison)
#   CRIB_CLUSTER_SANDBOX_IMAGE  containerd's pause image (registry.k8s.io/pause:3.10)
#   CRIB_CLUSTER_NO_BUILD=1     use the binaries as they are
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
clients=$repo/_output/clients
dir=${CRIB_CLUSTER_DIR:-$repo/_output/local-cluster}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# down empties $dir: it must be one this script made (its marker), or empty.
marker=$dir/.crib-local-cluster
if [[ ! -f $marker ]]; then
	[[ -z $(ls -A "$dir") ]] || { echo "local-cluster: $dir is not empty and not a cluster's directory (CRIB_CLUSTER_DIR)" >&2; exit 1; }
	touch "$marker"
fi

# The cluster's fixed facts. Addresses are private to its network namespace.
subnet_prefix=10.244.0
node_ip=$subnet_prefix.1 # the pod bridge's address: the node, as pods see it
service_cidr=10.96.0.0/24
node_name=crib-node

log() { echo "local-cluster: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# load reads what up recorded, so that later commands need no environment.
load() {
	[[ -f $dir/cluster.env ]] || die "no cluster in $dir (hack/local-cluster.sh up)"
	# shellcheck source=/dev/null
	source "$dir/cluster.env"
}

in_net() { nsenter --net="/run/netns/$netns" "$@"; }
in_node() { nsenter --net="/run/netns/$netns" --mount="$dir/ns/mnt" "$@"; }

kubectl_() { in_net "$clients/kubectl" --kubeconfig "$dir/pki/admin.kubeconfig" "$@"; }

# start NAME host|net|node CMD… runs a component in the background, in the
# host's namespaces (host), the cluster's network namespace (net) or also in
# the node's mount namespace (node), its pid in pids/NAME and its output in
# logs/NAME.log. setsid and nsenter exec the command, so the pid is the
# component's own.
start() {
	local name=$1 ns=(nsenter --net="/run/netns/$netns")
	case $2 in
	host) ns=() ;;
	node) ns+=(--mount="$dir/ns/mnt") ;;
	esac
	shift 2
	setsid "${ns[@]}" "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$dir/pids/$name"
}

# wait_for WHAT SECONDS CMD… retries CMD every half second.
wait_for() {
	local what=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS > deadline)); then
			log "$what: not within ${secs}s; last output:"
			"$@" >&2 || true
			return 1
		fi
		for f in "$dir"/pids/*; do
			[[ -f $f ]] || continue
			kill -0 "$(cat "$f")" 2>/dev/null && continue
			log "$(basename "$f") exited; the end of its log ($dir/logs/$(basename "$f").log):"
			tail -n 30 "$dir/logs/$(basename "$f").log" >&2
			return 1
		done
		sleep 0.5
	done
}

build() {
	[[ ${CRIB_CLUSTER_NO_BUILD:-} == 1 ]] && return
	"$repo/hack/install-deps.sh"
	log "building crib and the Kubernetes binaries (cached in _output/clients; the first time takes long)"
	make -C "$repo" --no-print-directory build >&2
	"$repo/hack/clients.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl crictl
	(cd "$repo" && go build -o _output/egressproxy ./hack/egressproxy)
}

# cert NAME SUBJECT EXT signs a key pair for NAME with the cluster's CA.
cert() {
	local name=$1 subj=$2 ext=$3 p=$dir/pki
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subj" \
		-keyout "$p/$name.key" -out "$p/$name.csr" 2>/dev/null
	openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 365 \
		-extfile <(printf '%s\n' "$ext") -out "$p/$name.crt" 2>/dev/null
	rm "$p/$name.csr"
}

kubeconfig() {
	local name=$1 server=https://127.0.0.1:6443
	cat >"$dir/pki/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: crib
  cluster: {server: "$server", certificate-authority: "$dir/pki/ca.crt"}
users:
- name: $name
  user: {client-certificate: "$dir/pki/$name.crt", client-key: "$dir/pki/$name.key"}
contexts:
- name: crib
  context: {cluster: crib, user: $name}
current-context: crib
EOF
}

# pki makes a CA, each component's certificate and the service-account key
# pair (new for every cluster: nothing outlives down).
pki() {
	local p=$dir/pki client="extendedKeyUsage=clientAuth"
	mkdir -p "$p"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
		-subj "/CN=crib-cluster-ca" -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
	cert apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$node_ip,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert admin "/O=system:masters/CN=crib-admin" "$client"
	cert controller-manager "/CN=system:kube-controller-manager" "$client"
	cert scheduler "/CN=system:kube-scheduler" "$client"
	cert kubelet "/O=system:nodes/CN=system:node:$node_name" "$client"
	cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
	openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
	openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
	for n in admin controller-manager scheduler kubelet; do kubeconfig "$n"; done
}

# cgroup_v1_hierarchies lists the mount points of the cgroup v1 hierarchies.
cgroup_v1_hierarchies() { findmnt -rn -t cgroup -o TARGET; }

# make_cgroups makes the cluster's cgroup root, which the kubelet requires
# to exist, in every hierarchy.
make_cgroups() {
	if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
		mkdir -p "/sys/fs/cgroup$cgroup_root"
		local c
		for c in $(cat /sys/fs/cgroup/cgroup.subtree_control); do
			echo "+$c" >"/sys/fs/cgroup$cgroup_root/cgroup.subtree_control"
		done
		return
	fi
	local h
	for h in $(cgroup_v1_hierarchies); do
		mkdir -p "$h$cgroup_root"
		# A v1 cpuset cgroup starts with no CPUs and no memory nodes.
		if [[ -f $h/cpuset.cpus ]]; then
			cat "$h/cpuset.cpus" >"$h$cgroup_root/cpuset.cpus"
			cat "$h/cpuset.mems" >"$h$cgroup_root/cpuset.mems"
		fi
	done
}

# remove_cgroups kills what is left in the cluster's cgroups and removes
# them, deepest first, in every hierarchy and in a hybrid host's cgroup2
# mount, where the kubelet makes its own copies.
remove_cgroups() {
	local roots=() r
	for r in $(cgroup_v1_hierarchies) /sys/fs/cgroup/unified /sys/fs/cgroup; do
		[[ -d $r$cgroup_root ]] && roots+=("$r$cgroup_root")
	done
	((${#roots[@]})) || return 0
	local try
	for try in 1 2 3 4 5 6 7 8 9 10; do
		find "${roots[@]}" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		find "${roots[@]}" -depth -type d -exec rmdir {} + 2>/dev/null || true
		local left=()
		for r in "${roots[@]}"; do [[ -d $r ]] && left+=("$r"); done
		((${#left[@]})) || return 0
		sleep 0.5
	done
	log "cgroups left: ${left[*]}"
	return 1
}

# node_namespaces makes the network namespace (with the pod bridge already
# holding the node's address, which the control plane advertises) and the
# mount namespace the kubelet and the runtime share.
node_namespaces() {
	ip netns add "$netns"
	ip -n "$netns" link set lo up
	ip -n "$netns" link add cbr0 type bridge
	ip -n "$netns" addr add "$node_ip/24" dev cbr0
	ip -n "$netns" link set cbr0 up
	mkdir -p "$dir/net.d" "$dir/ipam"
	cat >"$dir/net.d/10-crib-cluster.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "crib-cluster", "plugins": [
 {"type": "bridge", "bridge": "cbr0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet_prefix.0/24", "gateway": "$node_ip"}]], "dataDir": "$dir/ipam"}},
 {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
	# A mount namespace is kept by binding its nsfs file, which must not
	# sit on a shared mount (the bind would propagate into itself).
	mkdir -p "$dir/ns"
	mount --bind "$dir/ns" "$dir/ns"
	mount --make-private "$dir/ns"
	touch "$dir/ns/mnt"
	unshare --mount="$dir/ns/mnt" --propagation slave true
	local key v f
	for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
		kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
		key=${kv%%=*} v=${kv#*=} f=$dir/tunables/${key//\//.}
		mkdir -p "$dir/tunables"
		echo "$v" >"$f"
		nsenter --mount="$dir/ns/mnt" mount --bind "$f" "/proc/sys/$key"
	done
	# The kubelet links every container's log into /var/log/containers: the
	# cluster's own directory there, not the host's.
	mkdir -p "$dir/container-logs" /var/log/containers
	nsenter --mount="$dir/ns/mnt" mount --bind "$dir/container-logs" /var/log/containers
}

control_plane() {
	start etcd net "$clients/etcd" --name crib --data-dir "$dir/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster crib=http://127.0.0.1:2380 --unsafe-no-fsync
	# --unsafe-no-fsync: the cluster is thrown away at down; a shared test
	# disk's fsyncs would make every write slow.
	local p=$dir/pki
	start kube-apiserver net "$clients/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
		--bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$node_ip" \
		--tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
		--service-cluster-ip-range="$service_cidr" --authorization-mode=Node,RBAC \
		--enable-admission-plugins=NodeRestriction --allow-privileged=true \
		--kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types=InternalIP
	wait_for "kube-apiserver ready" 120 kubectl_ get --raw /readyz
	start kube-controller-manager net "$clients/kube-controller-manager" \
		--kubeconfig="$p/controller-manager.kubeconfig" --authentication-kubeconfig="$p/controller-manager.kubeconfig" \
		--authorization-kubeconfig="$p/controller-manager.kubeconfig" --bind-address=127.0.0.1 --secure-port=10257 \
		--leader-elect=false --use-service-account-credentials=true --root-ca-file="$p/ca.crt" \
		--service-account-private-key-file="$p/sa.key" \
		--cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key"
	start kube-scheduler net "$clients/kube-scheduler" \
		--kubeconfig="$p/scheduler.kubeconfig" --authentication-kubeconfig="$p/scheduler.kubeconfig" \
		--authorization-kubeconfig="$p/scheduler.kubeconfig" --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false
}

runtime_crib() {
	mkdir -p "$state"
	local mirror=""
	if [[ -n ${CRIB_CLUSTER_MIRROR:-} ]]; then
		mirror="[registry.hosts.\"_default\"]
skip_server = true
[[registry.hosts.\"_default\".mirrors]]
endpoint = \"http://$CRIB_CLUSTER_MIRROR\""
	fi
	cat >"$dir/crib.toml" <<EOF
socket = "unix://$state/crib.sock"
root = "$dir/crib"
state = "$state"
log_level = 2
cgroup_root = "$cgroup_root"

[cni]
conf_dir = "$dir/net.d"
bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]

# The cluster's own NRI socket: a runtime on the host may serve the default.
[nri]
socket_path = "$state/nri.sock"

$mirror
EOF
	start crib node env "${proxy_env[@]}" "$repo/bin/crib" daemon --config "$dir/crib.toml"
	endpoint=unix://$state/crib.sock
}

# runtime_containerd runs Debian's containerd as test/harness's
# StartContainerd configures it, for comparisons.
runtime_containerd() {
	command -v containerd >/dev/null || die "containerd is not installed (hack/install-deps.sh --test)"
	mkdir -p "$state" "$dir/containerd/certs.d"
	local sandbox=${CRIB_CLUSTER_SANDBOX_IMAGE:-registry.k8s.io/pause:3.10} h
	if [[ -n ${CRIB_CLUSTER_MIRROR:-} ]]; then
		for h in docker.io registry.k8s.io; do
			mkdir -p "$dir/containerd/certs.d/$h"
			printf 'server = "https://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
				"$h" "$CRIB_CLUSTER_MIRROR" >"$dir/containerd/certs.d/$h/hosts.toml"
		done
	fi
	cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$state/containerd"
[grpc]
  address = "$state/containerd.sock"
[ttrpc]
  address = "$state/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  disable_apparmor = true
  sandbox_image = "$sandbox"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/containerd/certs.d"
EOF
	start containerd node env "${proxy_env[@]}" containerd --config "$dir/containerd/config.toml"
	endpoint=unix://$state/containerd.sock
}

kubelet() {
	mkdir -p "$dir/kubelet" "$dir/pod-logs"
	cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: $cgroup_root
failCgroupV1: false
failSwapOn: false
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
podLogsDir: $dir/pod-logs
syncFrequency: 10s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$dir/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
EOF
	start kubelet node "$clients/kubelet" --config="$dir/kubelet.yaml" --kubeconfig="$dir/pki/kubelet.kubeconfig" \
		--container-runtime-endpoint="$endpoint" --root-dir="$dir/kubelet" --cert-dir="$dir/kubelet-pki" \
		--hostname-override="$node_name" --node-ip="$node_ip" --v=2
}

node_ready() {
	[[ $(kubectl_ get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

up() {
	[[ $(id -u) == 0 ]] || die "needs root (namespaces, mounts, cgroups)"
	[[ ! -f $dir/cluster.env ]] || die "a cluster is up in $dir already (hack/local-cluster.sh down)"
	build
	local name=${CRIB_CLUSTER_NAME:-local} runtime=${CRIB_CLUSTER_RUNTIME:-crib}
	# It names a netns, a cgroup and a directory under /run.
	[[ $name =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "CRIB_CLUSTER_NAME: lower-case letters, digits and '-' (at most 31), not '$name'"
	case $runtime in crib | containerd) ;; *) die "CRIB_CLUSTER_RUNTIME: crib or containerd, not $runtime" ;; esac
	netns=crib-cluster-$name
	state=/run/crib-cluster-$name
	cgroup_root=/crib-cluster-$name
	[[ ! -e /run/netns/$netns ]] || die "network namespace $netns exists: another cluster named $name is up"
	printf 'netns=%q\nstate=%q\ncgroup_root=%q\nruntime=%q\n' "$netns" "$state" "$cgroup_root" "$runtime" >"$dir/cluster.env"
	# From here on a failure leaves a half cluster: take it down.
	trap 'if (($?)); then log "up failed; taking the cluster down"; down; fi' EXIT
	mkdir -p "$dir/pids" "$dir/logs"
	pki
	node_namespaces
	make_cgroups
	control_plane
	# The namespace has no route out: pulls from real registries go through
	# a proxy that listens in it and dials from the host's namespace.
	start egress-proxy host "$repo/_output/egressproxy" -netns "/run/netns/$netns" -listen 127.0.0.1:3128
	proxy_env=(HTTPS_PROXY=http://127.0.0.1:3128 HTTP_PROXY=http://127.0.0.1:3128 NO_PROXY=127.0.0.1,localhost)
	"runtime_$runtime"
	wait_for "$runtime serving ${endpoint#unix://}" 60 test -S "${endpoint#unix://}"
	kubelet
	wait_for "node $node_name Ready" 180 node_ready
	# Pods are refused until their namespace's service account exists.
	wait_for "service account default/default" 60 kubectl_ -n default get serviceaccount default
	trap - EXIT
	log "up: node $node_name Ready on $runtime; logs in $dir/logs"
	echo "kubectl:  $0 kubectl get pods      (or: eval \"\$($0 env)\"; kubectl get pods)"
	echo "shell:    $0 shell                  (kubectl, curl to pod IPs and port-forwards)"
	echo "stop:     $0 down"
}

# stop NAME sends SIGTERM to a component, then SIGKILL after 20 s; only if
# the pid still runs a command line that names the cluster's directory or
# state (a pid recorded long ago may name another process now).
stop() {
	local f=$dir/pids/$1 pid i
	[[ -f $f ]] || return 0
	pid=$(cat "$f")
	if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -e "$dir/" -e "$state/" -e "/run/netns/$netns "; then
		rm -f "$f"
		return 0
	fi
	if kill -TERM "$pid" 2>/dev/null; then
		for ((i = 0; i < 40; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

# kill_shims kills, by pid, the runtime's per-pod shims (which outlive it by
# design): crib-shim or containerd-shim processes whose command line names the
# cluster's state or runtime directories.
kill_shims() {
	local d pid comm
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		comm=$(cat "$d/comm" 2>/dev/null) || continue
		[[ $comm == crib-shim || $comm == crib || $comm == containerd-shim* ]] || continue
		if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF -e "$state/" -e "$dir/"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
}

down() {
	load
	trap - EXIT
	set +e
	local failed=0
	stop kubelet
	# Pods outlive the kubelet; remove them through the runtime first.
	local sock=$state/crib.sock
	[[ $runtime == containerd ]] && sock=$state/containerd.sock
	if [[ -S $sock && -x $clients/crictl ]]; then
		timeout 120 in_node "$clients/crictl" --runtime-endpoint "unix://$sock" rmp -fa >/dev/null 2>&1
	fi
	stop crib
	stop containerd
	kill_shims
	for c in egress-proxy kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$c"; done
	remove_cgroups || failed=1
	# With its last process gone and its file unbound, the mount namespace
	# and every mount in it (pods' root filesystems, volumes) are gone.
	if [[ -e $dir/ns/mnt ]]; then
		umount "$dir/ns/mnt" 2>/dev/null
		umount "$dir/ns" 2>/dev/null
	fi
	if [[ -e /run/netns/$netns ]]; then
		ip netns del "$netns" || failed=1
	fi
	rm -rf "$state"
	if grep -qF " $dir/" /proc/self/mountinfo; then
		log "mounts left under $dir:"
		grep -F " $dir/" /proc/self/mountinfo >&2
		failed=1
	else
		# The logs stay for reading, crib's root for its images: the next
		# up does not pull them again (its pods were removed above).
		find "$dir" -mindepth 1 -maxdepth 1 ! -name logs ! -name crib ! -name .crib-local-cluster -exec rm -rf {} +
	fi
	((failed == 0)) || die "down: something is left (above)"
	log "down: removed (kept: the logs in $dir/logs, crib's images in $dir/crib)"
}

case ${1:-} in
build)
	CRIB_CLUSTER_NO_BUILD= build
	;;
up) up ;;
down) down ;;
kubectl)
	load
	shift
	# exec: a signal for this script (kill %1, Ctrl-C) reaches kubectl.
	exec nsenter --net="/run/netns/$netns" "$clients/kubectl" --kubeconfig "$dir/pki/admin.kubeconfig" "$@"
	;;
shell)
	load
	log "a shell in $netns (exit to leave)"
	shift
	KUBECONFIG=$dir/pki/admin.kubeconfig PATH=$clients:$PATH exec nsenter --net="/run/netns/$netns" "${SHELL:-bash}" "$@"
	;;
env)
	load
	echo "alias kubectl='nsenter --net=/run/netns/$netns $clients/kubectl --kubeconfig $dir/pki/admin.kubeconfig'"
	;;
*)
	echo "usage: $0 build|up|down|kubectl ARGS…|shell [ARGS…]|env (see the top of this file)" >&2
	exit 2
	;;
esac
