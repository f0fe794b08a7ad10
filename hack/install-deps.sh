#!/usr/bin/env bash
# Installs the Debian bookworm packages crib needs. Without arguments: what
# the daemon needs to build and run (make run). With --test: also what the
# tests need (make test). With --kind: what make kind needs. Idempotent:
# packages already present are not fetched again.
set -euo pipefail

packages=(
	containernetworking-plugins # the pod network: bridge, host-local, portmap, …
	iproute2
	gcc # cgo: nsexec
	binutils # hack/nolibc.sh: ld, objcopy, readelf (crib-init without libc)
	libc6-dev
	ca-certificates
	openssl # hack/local-cluster.sh: the cluster's certificates
)
if [[ ${1:-} == --test ]]; then
	packages+=(
		busybox-static # test images are built from it
		protobuf-compiler # make generate: the shim API
		qemu-system-x86 # hack/vmtest.sh: a pure cgroup v2 kernel for the cgroups tests
		linux-image-amd64
		containerd # benchmarks and the kubelet test compare against Debian's containerd + runc
		runc
		curl # the README's crictl walk-through
		procps # pgrep, copied into the critest busybox image (test/testregistry)
	)
elif [[ ${1:-} == --kind ]]; then
	packages+=(
		docker.io # hack/kind.sh: kind's nodes are Docker containers
		debootstrap # hack/kind-image.sh: the nodes' Debian root
		containerd # the comparison node image's runtime, and Docker's
		runc
	)
elif [[ -n ${1:-} ]]; then
	echo "usage: $0 [--test|--kind]" >&2
	exit 2
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
	if [[ $(id -u) != 0 ]]; then
		echo "install-deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Packages the test images are built from (test/testregistry), downloaded
# but not installed: Debian's dynamic busybox conflicts with busybox-static
# (whose shell runs applets before PATH, unlike the upstream busybox image),
# installing nginx would start it on the host's port 80, and netcat-openbsd
# (agnhost's nc, which speaks UDP) has no business on the host.
if [[ ${1:-} == --test ]]; then
	debs=$(cd "$(dirname "$0")/.." && pwd)/_output/debs
	mkdir -p "$debs"
	for p in busybox nginx netcat-openbsd; do
		compgen -G "$debs/${p}_*.deb" >/dev/null && continue
		echo "install-deps: downloading $p.deb into $debs"
		# A machine that installed nothing above may have no package lists yet.
		apt-cache show "$p" >/dev/null 2>&1 || apt-get update -qq
		(cd "$debs" && apt-get download -qq "$p" 2>&1 | grep -v 'Download is performed unsandboxed' || true)
		compgen -G "$debs/${p}_*.deb" >/dev/null || { echo "install-deps: apt-get download $p failed" >&2; exit 1; }
	done
fi

command -v go >/dev/null || { echo "install-deps: Go 1.26 is required (PATH has no go)" >&2; exit 1; }
