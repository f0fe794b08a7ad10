#!/bin/bash
# Builds crib's three binaries into DIR, as shipped: `make build` and the
# test harness (when $CRIB_BIN is not given) both run this, so tests run
# what users run.
#   crib, crib-shim  static, with cgo (nsexec's constructor runs under glibc)
#   crib-init        on amd64 without libc (hack/nolibc.sh, nsexec/nolibc.h):
#                    each container start and exec runs it
#
# Usage: hack/build.sh DIR [VERSION]
# $CRIB_BUILD_NAMES, when set, lists the binaries to build (tests).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mkdir -p "$1" && cd "$1" && pwd)
version=${2:-}
go=${GO:-go}
# grpcnotrace: grpc's request tracing links html/template, whose reflection on
# method names stops the linker from dropping unused methods: 3.8 MB more
# of the daemon's binary mapped, and paid in every node's memory.
# nri_no_wasm: NRI's WebAssembly plugin runtime (wazero's compiler) is
# 3.3 MB of the daemon's binary; crib runs NRI plugins as executables and
# over the socket only (docs/nri.md).
tags=netgo,osusergo,grpcnotrace,nri_no_wasm
# Static, so every re-exec (init, pause) skips the dynamic loader and a pause
# process costs ~130 kB instead of ~1 MB of mapped libraries.
ldflags="-extldflags=-static"
[[ -n $version ]] && ldflags="-X main.version=$version $ldflags"

names=${CRIB_BUILD_NAMES:-crib crib-shim crib-init}
want() { [[ " $names " == *" $1 "* ]]; }

cd "$repo"
for name in crib crib-shim; do
	want "$name" || continue
	CGO_ENABLED=1 "$go" build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$dir/$name" "./cmd/$name"
done
if ! want crib-init; then
	exit 0
elif [[ "$("$go" env GOARCH)" == amd64 ]]; then
	GO=$go hack/nolibc.sh
	CGO_ENABLED=0 "$go" build -trimpath -buildmode=exe -tags "$tags" -ldflags "-E _crib_start" \
		-o "$dir/crib-init" ./cmd/crib-init
	# Started by the kernel at _crib_start, with no dynamic loader (which
	# would probe the CPU again, and honour LD_* variables).
	entry=$(readelf -hW "$dir/crib-init" | awk '/Entry point/ { print $4 }')
	want=$("$go" tool nm "$dir/crib-init" | awk '$3 == "_crib_start" { print "0x" $1 }')
	if [[ -z $want || $((entry)) != $((want)) ]] || readelf -lW "$dir/crib-init" | grep -q INTERP; then
		echo "build: crib-init does not start at _crib_start without a loader (entry $entry)" >&2
		exit 1
	fi
else
	CGO_ENABLED=1 "$go" build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$dir/crib-init" ./cmd/crib-init
fi
