#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run the stdin builds of the fuzz targets over their seed corpora in
# tests/fuzz/corpus/<target>/: none may crash, and every seed not named
# broken-* must be accepted, so that the fuzzers start deep in the
# parsers.  (The libFuzzer builds run by .ci/run start from them.)
#   test-fuzz-corpus.sh CORPUS_DIR TARGET=BINARY...
set -euo pipefail
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:halt_on_error=1:abort_on_error=1"
corpus=$1
shift
n=0
for arg in "$@"; do
	target=${arg%%=*}
	bin=${arg#*=}
	[ -d "$corpus/$target" ] || { echo "FAIL: no corpus for $target" >&2; exit 1; }
	for f in "$corpus/$target"/*; do
		status=0
		out=$("$bin" <"$f" 2>"${TMPDIR:-/tmp}/fuzz-corpus.$$.err") || status=$?
		if [ $status != 0 ]; then
			echo "FAIL: $target crashed ($status) on $(basename "$f"):" >&2
			head -20 "${TMPDIR:-/tmp}/fuzz-corpus.$$.err" >&2
			rm -f "${TMPDIR:-/tmp}/fuzz-corpus.$$.err"
			exit 1
		fi
		case $(basename "$f") in
		broken-*) ;;
		*) [ "$out" = accepted ] || { echo "FAIL: $target refused $(basename "$f"): $out" >&2; exit 1; } ;;
		esac
		n=$((n + 1))
	done
done
rm -f "${TMPDIR:-/tmp}/fuzz-corpus.$$.err"
echo "PASS: test-fuzz-corpus ($n inputs)"
