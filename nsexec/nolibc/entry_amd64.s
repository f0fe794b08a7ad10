//go:build linux && !cgo

#include "textflag.h"

// _crib_start is the ELF entry point. The kernel left argc, argv, envp and
// auxv on the stack, where the Go runtime's entry reads them too: hand the
// C code that stack pointer, aligned for a C call, and give the runtime the
// same one back. BX is callee-saved in the C ABI.
TEXT _crib_start(SB),NOSPLIT|NOFRAME,$0
	MOVQ	SP, BX
	MOVQ	SP, DI
	ANDQ	$~15, SP
	CALL	crib_nolibc_main(SB)
	MOVQ	BX, SP
	MOVB	$1, ·entered(SB)
	JMP	_rt0_amd64_linux(SB)
