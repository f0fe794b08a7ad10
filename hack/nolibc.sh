#!/bin/bash
# Builds nsexec/nolibc/nsexec_linux_amd64.syso: nsexec's C code (nsexec.c,
# decode.c and nolibc.c, compiled with CRIB_NOLIBC) linked by GNU ld into one
# position-independent blob with no relocations left, wrapped in an object
# file the Go linker takes as it is. crib-init is then built without cgo, its
# entry point nsexec/nolibc's _crib_start (see nsexec/nolibc.h for why).
#
# Go's internal linker applies the relocations of a C object only in a
# dynamically linked binary, so everything is resolved here: the blob must
# hold no writable data and no absolute address (checked below).
#
# Usage: hack/nolibc.sh (from anywhere; rebuilds when a source is newer)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/nsexec
out=$src/nolibc/nsexec_linux_amd64.syso
srcs=("$src/nsexec.c" "$src/decode.c" "$src/nolibc.c")
deps=("${srcs[@]}" "$src"/*.h "$0")

if [[ "$(go env GOARCH)" != amd64 ]]; then
	echo "nolibc: only amd64 has a build without libc; build with CGO_ENABLED=1" >&2
	exit 1
fi
if [[ -f $out ]]; then
	stale=0
	for f in "${deps[@]}"; do [[ $f -nt $out ]] && stale=1; done
	((stale)) || exit 0
fi

work=$(mktemp -d)
trap '[[ -n ${NOLIBC_KEEP:-} ]] || rm -rf "$work"' EXIT

# No stack protector (its canary lives in TLS, which nobody set up), no
# unwind tables, no jump or lookup tables of absolute addresses.
cflags=(-std=gnu11 -O2 -Wall -Wextra -Werror -DCRIB_NOLIBC -ffreestanding -fno-builtin -fPIE
	-fvisibility=hidden -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables
	-fcf-protection=none -fno-jump-tables -fno-tree-switch-conversion -fno-common -fno-plt)
objs=()
for f in "${srcs[@]}"; do
	o=$work/$(basename "$f" .c).o
	gcc "${cflags[@]}" -c -o "$o" "$f"
	objs+=("$o")
done

# One output section, the entry's input section first, so the blob starts at
# crib_nolibc_main; anything writable fails the check below.
cat >"$work/blob.ld" <<'EOF'
ENTRY(crib_nolibc_main)
SECTIONS {
	. = 0;
	.blob : { KEEP(*(.text.entry)) *(.text .text.*) *(.rodata .rodata.*) }
	.rest : { *(.data .data.* .bss .bss.* COMMON .got .got.* .data.rel.ro*) }
	/DISCARD/ : { *(.comment) *(.note.*) *(.eh_frame*) }
}
EOF
ld -nostdlib -static -pie --no-dynamic-linker -z norelro --no-warn-rwx-segments -T "$work/blob.ld" -o "$work/blob.elf" "${objs[@]}"

rest=$(readelf -SW "$work/blob.elf" | awk '$2 == ".rest" { print $6 }')
if [[ -n $rest && $((16#$rest)) != 0 ]]; then
	echo "nolibc: the blob has $rest bytes of writable data; keep state on the state page (nolibc.h)" >&2
	exit 1
fi
if readelf -rW "$work/blob.elf" | grep -q 'R_X86_64'; then
	echo "nolibc: the blob needs relocations (an absolute address somewhere):" >&2
	readelf -rW "$work/blob.elf" >&2
	exit 1
fi
entry=$(readelf -hW "$work/blob.elf" | awk '/Entry point/ { print $4 }')
if [[ $((entry)) != 0 ]]; then
	echo "nolibc: crib_nolibc_main is at $entry, not at the start of the blob" >&2
	exit 1
fi
objcopy -O binary -j .blob "$work/blob.elf" "$work/blob.bin"

cat >"$work/blob.S" <<EOF
	.section .text,"ax",@progbits
	.globl crib_nolibc_main
	.type crib_nolibc_main,@function
crib_nolibc_main:
	.incbin "$work/blob.bin"
	.size crib_nolibc_main, .-crib_nolibc_main
	.section .note.GNU-stack,"",@progbits
EOF
gcc -c -o "$work/blob.o" "$work/blob.S"
mv "$work/blob.o" "$out"
