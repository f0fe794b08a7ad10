#!/usr/bin/env bash
# Installs the system packages crib's build and tests need on Debian bookworm.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(
	busybox-static
	containernetworking-plugins
	iproute2
	gcc
	libc6-dev
	ca-certificates
	protobuf-compiler # make generate: the shim API
	qemu-system-x86 # hack/vmtest.sh: a pure cgroup v2 kernel for the cgroups tests
	linux-image-amd64
	containerd # benchmarks compare against Debian's containerd + runc
	runc
)

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

command -v go >/dev/null || { echo "install-deps: Go 1.26 is required (PATH has no go)" >&2; exit 1; }
