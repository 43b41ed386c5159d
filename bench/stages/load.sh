#!/usr/bin/env bash
# bench stage: closed-loop throughput at 1, 8 and 32 connections against the floor,
# our server and `mlflow models serve` (DURATION each).
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

say "load: 1, 8, 32 connections, closed loop (floor, ours, mlflow)"
for c in 1 8 32; do
	lg "floor-c$c" -url "$FLOOR/v1/predict" -bodies "$BODIES/predict.jsonl" -c "$c" -expect '"approve"'
	lg "ours-c$c" -url "$OURS/v1/predict" -bodies "$BODIES/predict.jsonl" -c "$c" -expect '"approve"'
	lg "mlflow-c$c" -url "$SCORE/invocations" -bodies "$BODIES/invocations.jsonl" -c "$c" -expect '"predictions"'
done
