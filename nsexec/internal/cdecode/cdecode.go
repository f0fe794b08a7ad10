// Package cdecode exposes nsexec's C bootstrap decoder to Go tests and the
// fuzzer: a _test.go file cannot import "C", so this small cgo package
// compiles the very same decode.c and wraps it.
package cdecode

/*
#cgo CFLAGS: -std=gnu11 -Wall -Wextra -Werror -I${SRCDIR}/../..
#define _GNU_SOURCE
#include <stdlib.h>
#include "decode.c"

static int decode(const uint8_t *buf, size_t len, struct crib_bootstrap *b, char *err, size_t errlen)
{
	long n = crib_decode_header(buf, len, err, errlen);
	if (n < 0)
		return -1;
	if ((size_t)n != len - CRIB_HEADER_SIZE) {
		snprintf(err, errlen, "bootstrap: header says %ld bytes, %zu follow", n, len - CRIB_HEADER_SIZE);
		return -1;
	}
	return crib_decode_attrs(buf + CRIB_HEADER_SIZE, (size_t)n, b, err, errlen);
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// Namespace is a decoded namespace attribute.
type Namespace struct {
	Type uint32
	FD   int
	Path string
}

// Bootstrap is what the C decoder made of a message.
type Bootstrap struct {
	Role, CloneFlags uint32
	OOMScoreAdj      *int
	Namespaces       []Namespace
	CgroupTasks      []int
	Cgroup2FD        int
}

// Decode runs the C decoder on a whole message (header and attributes).
func Decode(msg []byte) (Bootstrap, error) {
	// A C copy, exactly len bytes long, so any read past the end is a read
	// past a malloc'd block that ASan or a guard page would catch.
	buf := C.malloc(C.size_t(max(len(msg), 1)))
	defer C.free(buf)
	copy(unsafe.Slice((*byte)(buf), len(msg)), msg)
	var b C.struct_crib_bootstrap
	var errbuf [512]C.char
	if C.decode((*C.uint8_t)(buf), C.size_t(len(msg)), &b, &errbuf[0], C.size_t(len(errbuf))) < 0 {
		return Bootstrap{}, errors.New(C.GoString(&errbuf[0]))
	}
	out := Bootstrap{Role: uint32(b.role), CloneFlags: uint32(b.clone_flags)}
	if b.have_oom_score_adj != 0 {
		v := int(b.oom_score_adj)
		out.OOMScoreAdj = &v
	}
	for i := 0; i < int(b.ntasks); i++ {
		out.CgroupTasks = append(out.CgroupTasks, int(b.tasks_fd[i]))
	}
	out.Cgroup2FD = int(b.cgroup2_fd)
	for i := 0; i < int(b.nns); i++ {
		ns := b.ns[i]
		out.Namespaces = append(out.Namespaces, Namespace{Type: uint32(ns._type), FD: int(ns.fd), Path: C.GoString(&ns.path[0])})
	}
	return out, nil
}
