#!/usr/bin/env bash
# bench stage: batch rows/s, 1,000 applications a request over 2 connections: ours
# with v2 (random forest) and v1 (logistic regression), MLflow with v2.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

say "batch rows/s (1,000 applications a request, 2 connections)"
lg "ours-batch-v2" -url "$OURS/v1/predict/batch" -bodies "$BODIES/batch.jsonl" -rows 1000 -c 2 -expect '"accepted":1000'
lg "mlflow-batch-v2" -url "$SCORE/invocations" -bodies "$BODIES/invocations-batch.jsonl" -rows 1000 -c 2 -expect '"predictions"'
promote 1
lg "ours-batch-v1" -url "$OURS/v1/predict/batch" -bodies "$BODIES/batch.jsonl" -rows 1000 -c 2 -expect '"accepted":1000'
promote 2
