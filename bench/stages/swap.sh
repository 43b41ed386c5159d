#!/usr/bin/env bash
# bench stage: swap under load: SWAP_DURATION [60s] at SWAP_RATE req/s with a promote
# every 5 s (1, 2, 1, ...), against half as long steady.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

steady=$(python3 -c 'import re,sys; m=re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", sys.argv[1]); v=float(m[1])*{"ms":0.001,"s":1,"m":60}[m[2]]; print("%gs" % max(v/2, 1))' "$SWAP_DURATION")
say "swap under load: $SWAP_DURATION at $SWAP_RATE req/s, promote every 5 s (1, 2, 1, ...) vs. $steady steady"
lg swap-steady -d "$steady" -url "$OURS/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -rate "$SWAP_RATE"
lg swap -d "$SWAP_DURATION" -url "$OURS/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -rate "$SWAP_RATE" \
	-promote-url "$OURS/admin/promote" -admin-token "$TOKEN" -promote-every 5s -promote-versions 1,2
promote 2
