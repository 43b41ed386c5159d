#!/usr/bin/env bash
# bench stage: latency at a fixed RATE req/s, open loop over 32 connections.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

say "fixed rate: $RATE req/s (open loop, 32 connections)"
lg "ours-rate" -url "$OURS/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -rate "$RATE" -expect '"approve"'
