#!/usr/bin/env bash
# vmtest.sh boots a throw-away kernel under QEMU (TCG) with nothing but
# busybox and Go test binaries in its initramfs, and runs the tests there as
# root with CRIB_TEST_STRICT=1. Its point is the cgroup layout: the guest
# mounts ONLY cgroup2 at /sys/fs/cgroup (default, "pure v2") or ONLY v1
# hierarchies (--v1), whatever the host runs.
#
# usage: hack/vmtest.sh [--v1] [--keep] [package ...]   (default ./cgroups/...)
# Needs: apt-get install -y linux-image-amd64 qemu-system-x86 busybox-static
# Prints "vmtest <mode>: PASS" or "vmtest <mode>: FAIL" and exits non-zero on
# failure (or when the guest never reports).
set -euo pipefail

mode=v2
keep=0
pkgs=()
for arg in "$@"; do
	case "$arg" in
	--v1) mode=v1 ;;
	--v2) mode=v2 ;;
	--keep) keep=1 ;;
	*) pkgs+=("$arg") ;;
	esac
done
[[ ${#pkgs[@]} -gt 0 ]] || pkgs=(./cgroups/...)

cd "$(dirname "$0")/.."

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[[ -x /bin/busybox ]] && /bin/busybox --list 2>/dev/null | grep -qx cpio || need+=(busybox-static)
compgen -G '/boot/vmlinuz-*' >/dev/null || need+=(linux-image-amd64)
if [[ ${#need[@]} -gt 0 ]]; then
	echo "vmtest: installing ${need[*]}" >&2
	apt-get install -y "${need[@]}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi
kernel=$(ls /boot/vmlinuz-* | sort -V | tail -n1)

work=$(mktemp -d /tmp/crib-vmtest.XXXXXX)
cleanup() { if [[ $keep == 1 ]]; then echo "vmtest: kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT

root=$work/root
mkdir -p "$root"/{bin,proc,sys,dev,tmp,tests}
cp /bin/busybox "$root/bin/busybox"
# Modules the tests need (overlay rootfs; veth and bridge for pod networks;
# a RAM disk, the block device that block I/O throttles are written for),
# from the guest kernel's own tree, loaded by the init with insmod.
kver=${kernel#/boot/vmlinuz-}
mkdir -p "$root/modules"
for m in fs/overlayfs/overlay drivers/net/veth net/802/stp net/llc/llc net/bridge/bridge drivers/block/brd; do
	for f in /lib/modules/$kver/kernel/$m.ko /lib/modules/$kver/kernel/$m.ko.xz; do
		[[ -f $f ]] && cp "$f" "$root/modules/"
	done
done

# Static test binaries, one per package that has tests. cgo stays on (nsexec
# is C) and links statically: the guest has no libc.
CGO_ENABLED=1 go test -c -tags netgo,osusergo,grpcnotrace,nri_no_wasm -ldflags '-extldflags=-static' -o "$root/tests/" "${pkgs[@]}"
ls "$root/tests" | grep -q . || { echo "vmtest: no test binaries built for ${pkgs[*]}" >&2; exit 1; }
# crib-init as shipped (without libc on amd64), for runtime/launch's tests
# of that build: $CRIB_BIN's directory.
mkdir -p "$root/crib"
CRIB_BUILD_NAMES=crib-init "$(dirname "$0")/build.sh" "$root/crib"

cat >"$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
# CRIB_TEST_OWN_HOST: the guest is the tests' own, host-wide settings included.
export PATH=/bin TMPDIR=/tmp HOME=/tmp CRIB_TEST_STRICT=1 CRIB_TEST_OWN_HOST=1 CRIB_BIN=/crib/crib
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in overlay llc stp bridge veth; do
	[ -f /modules/\$m.ko ] && insmod /modules/\$m.ko
done
[ -f /modules/brd.ko ] && insmod /modules/brd.ko rd_nr=1 rd_size=4096
if [ "$mode" = v2 ]; then
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
	for c in \$(cat /sys/fs/cgroup/cgroup.controllers); do
		echo "+\$c" >/sys/fs/cgroup/cgroup.subtree_control || echo "vmtest: cannot enable \$c"
	done
	echo "vmtest: cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.subtree_control)"
else
	mount -t tmpfs cgroup /sys/fs/cgroup
	for c in cpu cpuacct cpuset memory pids freezer devices blkio hugetlb; do
		mkdir /sys/fs/cgroup/\$c
		mount -t cgroup -o \$c cgroup /sys/fs/cgroup/\$c || echo "vmtest: cannot mount \$c"
	done
fi
grep cgroup /proc/self/mountinfo
status=PASS
cd /tmp
for t in /tests/*; do
	echo "vmtest: running \$t"
	if ! \$t -test.v -test.count=1 -test.timeout=${VMTEST_TEST_TIMEOUT:-300s}; then status=FAIL; fi
done
echo "vmtest $mode: \$status"
sync
poweroff -f
INIT
chmod +x "$root/init"

(cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.gz"

log=$work/console.log
echo "vmtest: booting $kernel ($mode)" >&2
set +e
timeout 900 qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet" </dev/null 2>&1 | tee "$log"
set -e

if grep -q "^vmtest $mode: PASS" "$log"; then
	echo "vmtest $mode: PASS (${pkgs[*]})"
	exit 0
fi
grep -q "^vmtest $mode: FAIL" "$log" || echo "vmtest $mode: guest did not report" >&2
echo "vmtest $mode: FAIL (${pkgs[*]})"
exit 1
