/* libFuzzer harness for the bootstrap decoder (hack/fuzz-nsexec.sh builds it
 * with clang -fsanitize=fuzzer,address,undefined). The input is a whole
 * message; what the decoder accepts must be self-consistent. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "../decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct crib_bootstrap b;
	long n = crib_decode_header(data, size, err, sizeof(err));
	if (n < 0 || (size_t)n != size - CRIB_HEADER_SIZE)
		return 0;
	/* An exact-size heap copy: ASan catches any read past the end. */
	uint8_t *attrs = malloc((size_t)n ? (size_t)n : 1);
	memcpy(attrs, data + CRIB_HEADER_SIZE, (size_t)n);
	int rc = crib_decode_attrs(attrs, (size_t)n, &b, err, sizeof(err));
	free(attrs);
	if (rc < 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort(); /* every rejection explains itself */
		return 0;
	}
	if (b.role < CRIB_ROLE_INIT || b.role > CRIB_ROLE_PAUSE || b.nns > CRIB_MAX_NAMESPACES)
		abort();
	uint32_t seen = 0;
	for (size_t i = 0; i < b.nns; i++) {
		if ((seen & b.ns[i].type) || (b.clone_flags & b.ns[i].type) || !crib_ns_name(b.ns[i].type))
			abort();
		if ((b.ns[i].fd < 0) == (b.ns[i].path[0] == '\0'))
			abort();
		seen |= b.ns[i].type;
	}
	return 0;
}
