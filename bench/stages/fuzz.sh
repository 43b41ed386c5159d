#!/usr/bin/env bash
# bench stage: a long run of each fuzz target, FUZZTIME executions each (0
# skips it). The targets and the run are the Makefile's `fuzz`, so CI and the
# bench fuzz the same list.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

cd "$ROOT"
[ "$FUZZTIME" != 0 ] || { echo "bench: FUZZTIME=0, no fuzzing" >&2; exit 0; }
say "fuzz: $FUZZTIME per target"
# go test's output without its progress lines but each target's last one,
# so a failure keeps its message and the failing input's path.
make -s --no-print-directory fuzz FUZZTIME="$FUZZTIME" 2>&1 |
	awk '/^fuzz: elapsed/ { last = $0; next }
		/^PASS$/ { next }
		{ if (last != "") print last; last = ""; print }' |
	tee "$RES/fuzz.txt" >&2
