#!/usr/bin/env bash
# Runs cgroups/systemd's TestSystemdScope (CRIB_SYSTEMD_TEST=1) against a
# real systemd on a host that has none as PID 1: systemd boots as PID 1 of
# private pid, mount, cgroup, network, UTS and IPC namespaces over a copy of
# a Debian rootfs with systemd (ROOTFS), inside a cgroup this script makes
# (crib-systemd-test-<pid>, directly under each hierarchy's root) and
# removes; the test binary runs in a scope of that systemd. The cgroup
# namespace shows systemd only that cgroup. Units that would reach the host
# (sysctl, modules, binfmt, time, udev) are masked, /proc/sys and /sys are
# read-only, and systemd has no CAP_SYS_MODULE, CAP_SYS_TIME or
# CAP_SYS_RAWIO. Everything (processes by pid, cgroups, the copy) goes when
# the script ends. For cgroup v1 and hybrid hosts (systemd runs hybrid
# inside: systemd 252 mounts the cgroup2 hierarchy itself); on a systemd
# host run the test directly instead.
#
#   sudo ROOTFS=DIR hack/systemd-test.sh   # DIR: a debootstrapped root with systemd
#   sudo hack/systemd-test.sh sh -c '…'  # another command there instead
set -euo pipefail

ROOTFS=${ROOTFS:?set ROOTFS to a Debian root with systemd and dbus, e.g. debootstrap --variant=minbase --include=systemd,dbus bookworm DIR}
cmd=("$@")
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -x "$ROOTFS/lib/systemd/systemd" ] || { echo "$ROOTFS has no systemd" >&2; exit 1; }
if [ -d /run/systemd/system ]; then
	echo "systemd runs here: CRIB_SYSTEMD_TEST=1 go test -run TestSystemdScope ./cgroups/systemd" >&2
	exit 1
fi

cd "$(dirname "$0")/.."
work=$(mktemp -d /var/tmp/crib-systemd-test.XXXXXX)
cg=crib-systemd-test-$$
# The host's cgroup mounts: "<mountpoint> <fstype> <superblock options>".
mapfile -t mounts < <(awk '{ for (i = 7; $i != "-"; i++) ; if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5, $(i+1), $(i+3) }' /proc/self/mountinfo)
unshare_pid=
sd_pid=

cleanup() {
	set +e
	# SIGKILL to PID 1 of the namespace ends every process in it.
	[ -n "$sd_pid" ] && kill -KILL "$sd_pid" 2>/dev/null
	[ -n "$unshare_pid" ] && wait "$unshare_pid" 2>/dev/null
	for m in "${mounts[@]}"; do
		set -- $m
		[ -d "$1/$cg" ] || continue
		# Bottom up: what systemd made below, then the test's cgroup.
		find "$1/$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
		[ -d "$1/$cg" ] && echo "left: $1/$cg" >&2
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "copying $ROOTFS" >&2
cp -a "$ROOTFS" "$work/root"
root=$work/root
for u in systemd-modules-load.service systemd-sysctl.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
	systemd-timesyncd.service systemd-udevd.service systemd-udev-trigger.service systemd-udevd-control.socket \
	systemd-udevd-kernel.socket systemd-networkd.service systemd-networkd.socket systemd-resolved.service \
	getty@.service serial-getty@.service console-getty.service container-getty@.service systemd-firstboot.service \
	apt-daily.timer apt-daily-upgrade.timer; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done
: >"$root/etc/machine-id"
CGO_ENABLED=0 go test -c -o "$root/crib-systemd.test" ./cgroups/systemd

# The cgroup namespace's root: the test's cgroup in every hierarchy.
procs=()
for m in "${mounts[@]}"; do
	set -- $m
	mkdir "$1/$cg"
	if [ -f "$1/cpuset.cpus" ]; then
		cat "$1/cpuset.cpus" >"$1/$cg/cpuset.cpus"
		cat "$1/cpuset.mems" >"$1/$cg/cpuset.mems"
	fi
	procs+=("$1/$cg/cgroup.procs")
done

# Runs as PID 1 of the new namespaces, then becomes systemd.
cat >"$work/init.sh" <<'EOF'
set -eu
root=$1; shift
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --bind "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs "$root/sys/fs/cgroup"
for m in "$@"; do
	set -- $(echo "$m" | tr '|' ' ')
	dir=$root/sys/fs/cgroup/$(basename "$1")
	mkdir -p "$dir"
	if [ "$2" = cgroup2 ]; then
		mount -t cgroup2 cgroup2 "$dir"
	else
		opts=$(echo "$3" | tr ',' '\n' | grep -v -e '^rw$' -e '^ro$' | paste -sd,)
		mount -t cgroup -o "$opts" cgroup "$dir"
	fi
done
mount -t tmpfs -o mode=755,nosuid tmpfs "$root/dev"
for d in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
	set -- $d
	mknod -m 666 "$root/dev/$1" c "$2" "$3"
done
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
cd "$root"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot
exec env -i container=crib-test /usr/bin/setpriv --bounding-set -sys_module,-sys_time,-sys_rawio \
	/lib/systemd/systemd --unit=multi-user.target
EOF

args=()
for m in "${mounts[@]}"; do args+=("$(echo "$m" | tr ' ' '|')"); done
(
	for f in "${procs[@]}"; do echo $BASHPID >"$f"; done
	exec unshare --fork --pid --mount --cgroup --uts --ipc --net --propagation private \
		sh "$work/init.sh" "$root" "${args[@]}"
) >"$work/systemd.log" 2>&1 &
unshare_pid=$!
for _ in $(seq 100); do
	sd_pid=$(cat "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null | awk '{print $1}') || true
	[ -n "$sd_pid" ] && [ -S "/proc/$sd_pid/root/run/systemd/private" ] && break
	sleep 0.3
done
[ -n "$sd_pid" ] || { cat "$work/systemd.log" >&2; echo "systemd did not start" >&2; exit 1; }
for _ in $(seq 100); do
	state=$(nsenter -t "$sd_pid" -a systemctl is-system-running 2>/dev/null || true)
	case $state in running | degraded) break ;; esac
	sleep 0.3
done
echo "systemd pid $sd_pid ($state):" >&2
nsenter -t "$sd_pid" -a systemctl --version | head -1 >&2
nsenter -t "$sd_pid" -a systemctl --failed --no-legend >&2 || true
if [ ${#cmd[@]} -gt 0 ]; then
	# Another command in the same place (a look at systemd's behaviour).
	nsenter -t "$sd_pid" -a systemd-run --scope --quiet --collect -- "${cmd[@]}"
	exit
fi
nsenter -t "$sd_pid" -a env CRIB_SYSTEMD_TEST=1 systemd-run --scope --quiet --collect -- \
	/crib-systemd.test -test.run 'TestSystemdScope' -test.v -test.count=1
