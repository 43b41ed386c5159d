#!/usr/bin/env bash
# bench stage: the fixed-rate run with and without a shadow, SHADOW_PAIRS [3]
# alternating pairs. The shadow is set and retired through the admin API
# (MLflow first, then reconcile), so each run starts from the state it names.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

say "shadow cost: the same fixed rate with and without a shadow (alternating pairs)"
for pair in $(seq "${SHADOW_PAIRS:-3}"); do
	lg "shadow-off-$pair" -url "$OURS/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -rate "$RATE" -expect '"approve"'
	admin promote '{"alias":"shadow","version":"1"}'
	lg "shadow-on-$pair" -url "$OURS/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -rate "$RATE" -expect '"approve"'
	admin retire '{"alias":"shadow"}'
done
curl -sf "$OURS/metrics" | grep -E '^model_shadow_predictions_total' >"$RES/shadow-metrics.txt" || true
