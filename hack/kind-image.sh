#!/usr/bin/env bash
# Builds kind node images with no registry: a Debian bookworm root file
# system (debootstrap, systemd as init) with the kubelet, kubeadm and kubectl
# built from k8s.io/kubernetes (hack/clients.sh), the standard CNI plugins
# (Debian's), and the control plane's images built from their Go modules
# (hack/kind/mkimage) and preloaded.
#
#   hack/kind-image.sh crib        crib-node:TAG; crib and its shim as a
#                                  systemd service, the images in crib's store
#   hack/kind-image.sh containerd  containerd-node:TAG; Debian's
#                                  containerd + runc, for comparison; the images
#                                  are imported when the node boots
#   hack/kind-image.sh rootfs PACKAGES NAME
#                                  prints the path of a debootstrapped root
#                                  (minbase + PACKAGES, comma-separated) as a
#                                  tar, built once and cached
#
# TAG is CRIB_KIND_TAG, else the commit (git describe). Docker must be up
# (hack/kind.sh docker-up; DOCKER_HOST overrides its socket).
# Outputs and caches live in _output/kind (the debootstrapped roots are kept:
# rm -r _output/kind/cache to start over).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/_output/kind
cache=$out/cache
clients=$repo/_output/clients
k8s_version=v1.37.2
# hack/kind.sh's Docker daemon, and Debian's client of the same release.
export DOCKER_HOST=${DOCKER_HOST:-unix:///run/crib-kind/docker.sock}
export PATH=/usr/bin:/usr/sbin:$PATH
version=${CRIB_KIND_TAG:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo dev)}

log() { echo "kind-image: $*" >&2; }
die() {
	log "$*"
	exit 1
}

runtime=${1:-}
case $runtime in
crib) extra_packages= ;;
containerd) extra_packages=containerd,runc ;;
rootfs) [[ $# == 3 ]] || die "usage: $0 rootfs PACKAGES NAME" ;;
*) die "usage: $0 crib|containerd|rootfs PACKAGES NAME" ;;
esac
[[ $(id -u) == 0 ]] || die "needs root (debootstrap, file ownership)"
command -v debootstrap >/dev/null || die "debootstrap is missing (hack/install-deps.sh --kind)"
mkdir -p "$cache" "$out/bin" "$out/images"

# rootfs PACKAGES NAME: a debootstrapped root as a tar, cached by its
# package list.
rootfs() {
	local packages=$1 name=$2 key tarball dir
	key=$(echo "$packages" | sha256sum | cut -c1-12)
	tarball=$cache/$name-$key.tar
	if [[ ! -f $tarball ]]; then
		dir=$(mktemp -d "$cache/debootstrap.XXXXXX")
		log "debootstrap $name ($packages)"
		debootstrap --variant=minbase --include="$packages" bookworm "$dir" http://deb.debian.org/debian >"$dir.log" 2>&1 ||
			{ tail -20 "$dir.log" >&2; rm -rf "$dir" "$dir.log"; die "debootstrap $name failed"; }
		rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
		tar -C "$dir" --numeric-owner -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$dir" "$dir.log"
	fi
	echo "$tarball"
}

if [[ $runtime == rootfs ]]; then
	rootfs "$2" "$3"
	exit
fi
docker info >/dev/null 2>&1 || die "no Docker at ${DOCKER_HOST:-the default socket} (hack/kind.sh docker-up)"

# What the node runs: systemd and what kind's node conventions expect.
node_packages=systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,e2fsprogs,bash,ca-certificates,curl,jq,procps,socat
[[ -n $extra_packages ]] && node_packages+=,$extra_packages
node_base=$(rootfs "$node_packages" "node-$runtime")
# kube-proxy's image: its binary over a Debian root with iptables and nft.
proxy_base=$(rootfs iptables,nftables,conntrack kube-proxy)

log "building binaries"
make -C "$repo" build >/dev/null
"$repo/hack/clients.sh" kubelet kubeadm kubectl crictl kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd
(cd "$repo/hack/kindtools" && CGO_ENABLED=0 go build -trimpath -o "$out/bin/kind" sigs.k8s.io/kind &&
	CGO_ENABLED=0 go build -trimpath -o "$out/bin/coredns" github.com/coredns/coredns)
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$out/bin/mkimage" ./hack/kind/mkimage &&
	CGO_ENABLED=0 go build -trimpath -o "$out/bin/pause" ./test/testregistry/internal/pause &&
	CGO_ENABLED=0 go build -trimpath -o "$out/bin/runccaps" ./hack/kind/runccaps)

# The images `kubeadm config images list` names for this version.
log "building the control plane's images"
mk=$out/bin/mkimage
img=$out/images
mkdir -p "$out/empty-tmp" && chmod 1777 "$out/empty-tmp"
for c in kube-apiserver kube-controller-manager kube-scheduler; do
	[[ $img/$c.tar -nt $clients/$c ]] ||
		"$mk" -o "$img/$c.tar" -name "registry.k8s.io/$c:$k8s_version" "$clients/$c=/usr/local/bin/$c" "$out/empty-tmp=/tmp"
done
[[ $img/kube-proxy.tar -nt $clients/kube-proxy && $img/kube-proxy.tar -nt $proxy_base ]] ||
	"$mk" -o "$img/kube-proxy.tar" -name "registry.k8s.io/kube-proxy:$k8s_version" -base "$proxy_base" "$clients/kube-proxy=/usr/local/bin/kube-proxy"
[[ $img/etcd.tar -nt $clients/etcd ]] ||
	"$mk" -o "$img/etcd.tar" -name registry.k8s.io/etcd:3.7.0-0 "$clients/etcd=/usr/local/bin/etcd" "$out/empty-tmp=/tmp"
[[ $img/coredns.tar -nt $out/bin/coredns ]] ||
	"$mk" -o "$img/coredns.tar" -name registry.k8s.io/coredns/coredns:v1.14.6 -entrypoint '["/coredns"]' -user 65532:65532 \
		-filecap /coredns=net_bind_service "$out/bin/coredns=/coredns"
[[ $img/pause.tar -nt $out/bin/pause ]] ||
	"$mk" -o "$img/pause.tar" -name registry.k8s.io/pause:3.10.2 -entrypoint '["/pause"]' -user 65535:65535 "$out/bin/pause=/pause"

log "assembling the $runtime node's root"
build=$(mktemp -d "$out/build.XXXXXX")
trap 'rm -rf "$build"' EXIT
root=$build/rootfs
mkdir "$root"
tar -C "$root" --numeric-owner -xf "$node_base"
node=$repo/hack/kind/node
install -m 0755 "$node/common/entrypoint" "$node/common/crib-kind-cgroups" "$node/common/crib-kind-podnet" "$root/usr/local/bin/"
install -m 0755 "$clients/kubelet" "$clients/kubeadm" "$clients/kubectl" "$clients/crictl" "$root/usr/local/bin/"
install -m 0644 "$node/common/kubelet.service" "$node/common/kubelet.slice" "$node/common/crib-kind-podnet.service" "$root/etc/systemd/system/"
mkdir -p "$root/opt/cni/bin" "$root/etc/cni/net.d" "$root/kind/manifests" "$root/etc/kubernetes/manifests"
for p in bridge host-local loopback portmap; do install -m 0755 "/usr/lib/cni/$p" "$root/opt/cni/bin/"; done
install -m 0644 "$node/common/default-cni.yaml" "$node/common/default-storage.yaml" "$root/kind/manifests/"
echo "$k8s_version" >"$root/kind/version"
echo "$runtime $version" >"$root/kind/runtime"
# What kind's node images set up too: no units that make no sense in a
# container, journald not reading the host's kmsg.
rm -f "$root"/etc/systemd/system/*.wants/* "$root"/lib/systemd/system/multi-user.target.wants/*
rm -f "$root"/lib/systemd/system/sockets.target.wants/*udev* "$root"/lib/systemd/system/sysinit.target.wants/systemd-udev*
echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
ln -sf /lib/systemd/systemd "$root/sbin/init"
units=(kubelet.service crib-kind-podnet.service)
case $runtime in
crib)
	install -m 0755 "$repo/bin/crib" "$repo/bin/crib-shim" "$repo/bin/crib-init" "$root/usr/local/bin/"
	install -m 0755 "$node/crib/ctr" "$node/crib/containerd" "$root/usr/local/bin/"
	install -m 0644 "$node/crib/crib.service" "$root/etc/systemd/system/"
	mkdir -p "$root/etc/crib"
	install -m 0644 "$node/crib/crib.toml" "$root/etc/crib/crib.toml"
	install -m 0644 "$node/crib/crictl.yaml" "$root/etc/crictl.yaml"
	units+=(crib.service)
	log "preloading images into crib's store"
	for t in "$img"/*.tar; do
		"$repo/bin/crib" image import --config "$root/etc/crib/crib.toml" --root "$root/var/lib/crib" "$t"
	done
	;;
containerd)
	mkdir -p "$root/etc/containerd" "$root/kind/images"
	install -m 0644 "$node/containerd/config.toml" "$root/etc/containerd/config.toml"
	install -m 0644 "$node/containerd/crictl.yaml" "$root/etc/crictl.yaml"
	install -m 0644 "$node/containerd/kind-images.service" "$root/etc/systemd/system/"
	cp "$img"/*.tar "$root/kind/images/"
	units+=(containerd.service kind-images.service)
	;;
esac
systemctl --root="$root" enable "${units[@]}" >/dev/null 2>&1 || die "systemctl enable ${units[*]} failed"
systemctl --root="$root" mask systemd-binfmt.service >/dev/null 2>&1 || true

tag=$runtime-node:$version
log "importing $tag into Docker"
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -c . | docker import - "$tag-rootfs" >/dev/null
# docker import takes no STOPSIGNAL: systemd stops cleanly on SIGRTMIN+3.
printf 'FROM %s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n' "$tag-rootfs" |
	DOCKER_BUILDKIT=0 docker build -q -t "$tag" - >/dev/null
docker rmi "$tag-rootfs" >/dev/null
echo "$tag"
