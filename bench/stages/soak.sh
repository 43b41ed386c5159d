#!/usr/bin/env bash
# bench stage: the soak: SOAK [10m] at SWAP_RATE req/s, a promote every 30 s,
# /metrics every 10 s; then the sessions and the server log's swap lines.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

say "soak: $SOAK at $SWAP_RATE req/s, promote every 30 s, /metrics every 10 s"
lg soak -warmup 0s -d "$SOAK" -url "$OURS/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -rate "$SWAP_RATE" \
	-promote-url "$OURS/admin/promote" -admin-token "$TOKEN" -promote-every 30s -promote-versions 1,2 \
	-metrics-url "$OURS/metrics" -metrics-every 10s
sleep 3 # let the last retired session drain
promote 2 || true
sleep 2
curl -sf "$OURS/metrics" | grep -E '^(model_sessions_open|model_info|process_resident_memory_bytes|go_goroutines)' >"$RES/soak-after.txt" || true
grep -c '"model version live"' "$WORK/serve.log" >"$RES/log-live.txt" || true
grep -c '"model version retired"' "$WORK/serve.log" >"$RES/log-retired.txt" || true
