#!/usr/bin/env bash
# bench stage: a long run of each fuzz target, FUZZTIME each (0 skips it).
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

cd "$ROOT"
[ "$FUZZTIME" != 0 ] || { echo "bench: FUZZTIME=0, no fuzzing" >&2; exit 0; }
say "fuzz: $FUZZTIME per target"
{
	go test -run='^$' -fuzz='^FuzzDecodeApplication$' -fuzztime="$FUZZTIME" ./schemas 2>&1 | tail -3
	go test -run='^$' -fuzz='^FuzzPredict$' -fuzztime="$FUZZTIME" ./serve/api 2>&1 | tail -3
	go test -run='^$' -fuzz='^FuzzWebhook$' -fuzztime="$FUZZTIME" ./serve/hooks 2>&1 | tail -3
} | tee "$RES/fuzz.txt" >&2
