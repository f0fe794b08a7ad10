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
# Usage: hack/nolibc.sh (from anywhere). It always rebuilds (half a second):
# a build keyed on timestamps could link a blob older than its sources.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/nsexec
out=$src/nolibc/nsexec_linux_amd64.syso
srcs=("$src/nsexec.c" "$src/decode.c" "$src/nolibc.c")

if [[ "$("${GO:-go}" env GOARCH)" != amd64 ]]; then
	echo "nolibc: only amd64 has a build without libc; build with CGO_ENABLED=1" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# No stack protector (its canary lives in TLS, which nobody set up), no
# unwind tables, no jump or lookup tables of absolute addresses, and the
# baseline instruction set: the blob runs before Go checks the CPU.
cflags=(-std=gnu11 -O2 -march=x86-64 -mtune=generic -Wall -Wextra -Werror -DCRIB_NOLIBC -ffreestanding
	-fno-builtin -fPIE -fvisibility=hidden -fno-stack-protector -fno-asynchronous-unwind-tables
	-fno-unwind-tables -fcf-protection=none -fno-jump-tables -fno-tree-switch-conversion -fno-common -fno-plt)
objs=()
for f in "${srcs[@]}"; do
	o=$work/$(basename "$f" .c).o
	gcc "${cflags[@]}" -c -o "$o" "$f"
	objs+=("$o")
done

# One output section, the entry's input section first, so the blob starts at
# crib_nolibc_main. Writable data is discarded, so that ld refuses any
# reference to it; ld's own dynamic sections go to .dyn, and its
# relocations, PLT and copied data to .empty, checked to be empty below; any
# other section is an error.
cat >"$work/blob.ld" <<'LD'
ENTRY(crib_nolibc_main)
SECTIONS {
	. = 0;
	.blob : { KEEP(*(.text.entry)) *(.text .text.*) *(.rodata .rodata.*) }
	.dyn : { *(.dynsym) *(.dynstr) *(.hash) *(.gnu.hash) *(.dynamic) *(.interp) *(.gnu.version*) }
	.empty : { *(.rela.* .rel.* .relr.* .plt .plt.* .iplt .dynbss) }
	/DISCARD/ : { *(.data .data.* .bss .bss.* COMMON .got .got.* .data.rel.ro*)
		*(.comment) *(.note.*) *(.eh_frame*) *(.sframe) }
}
LD
ld -nostdlib -static -pie --no-dynamic-linker -z norelro -z nopack-relative-relocs --no-warn-rwx-segments \
	--orphan-handling=error -T "$work/blob.ld" -o "$work/blob.elf" "${objs[@]}"

# size -A: one "name size address" line per section.
empty=$(size -A "$work/blob.elf" | awk '$1 == ".empty" { print $2 }')
if [[ -n $empty && $empty != 0 ]] || readelf -rW "$work/blob.elf" | grep -q '^Relocation section'; then
	echo "nolibc: the blob needs relocations or a PLT (an absolute address, a call out of it):" >&2
	readelf -rW "$work/blob.elf" >&2
	exit 1
fi
entry=$(readelf -hW "$work/blob.elf" | awk '/Entry point/ { print $4 }')
if [[ $((entry)) != 0 ]]; then
	echo "nolibc: crib_nolibc_main is at $entry, not at the start of the blob" >&2
	exit 1
fi
objcopy -O binary -j .blob "$work/blob.elf" "$work/blob.bin"

# Page-aligned, as ld laid the blob out from address 0.
cat >"$work/blob.S" <<'ASM'
	.section .text,"ax",@progbits
	.p2align 12
	.globl crib_nolibc_main
	.type crib_nolibc_main,@function
crib_nolibc_main:
	.incbin "blob.bin"
	.size crib_nolibc_main, .-crib_nolibc_main
	.section .note.GNU-stack,"",@progbits
ASM
(cd "$work" && gcc -c -o blob.o blob.S)
mv "$work/blob.o" "$out"
