#!/usr/bin/env bash
# Fuzzes nsexec's C bootstrap decoder with libFuzzer (coverage-guided, with
# ASan and UBSan) for the given time (default 600 s). The corpus lives in
# nsexec/fuzz/corpus and grows with each run; commit what it adds.
# Needs: apt-get install clang-14 libclang-rt-14-dev
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
cc=$(command -v clang-14 || command -v clang)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$cc" -g -O1 -std=gnu11 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all nsexec/decode.c nsexec/fuzz/fuzz_decode.c -o "$out/fuzz_decode"
mkdir -p nsexec/fuzz/corpus
# Seed with the Go encoder's messages (the Go fuzz seeds) when the corpus is empty.
"$out/fuzz_decode" -max_total_time="$seconds" -max_len=70000 -print_final_stats=1 \
	-artifact_prefix="$out/" nsexec/fuzz/corpus
