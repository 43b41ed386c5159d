#!/usr/bin/env bash
# bench stage: our server and `mlflow models serve` must decide the same 1,000
# applications the same way before they are timed.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

say "agreement: ours and mlflow models serve on the same 1,000 applications"
curl -sf -H 'Content-Type: application/json' --data-binary @"$BODIES/batch.jsonl" "$OURS/v1/predict/batch" >"$WORK/ours-batch.json"
curl -sf -H 'Content-Type: application/json' --data-binary @"$BODIES/invocations-batch.jsonl" "$SCORE/invocations" >"$WORK/mlflow-batch.json"
python3 - "$WORK/ours-batch.json" "$WORK/mlflow-batch.json" >"$RES/agreement.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))["results"]
theirs = json.load(open(sys.argv[2]))["predictions"]
assert len(ours) == len(theirs), (len(ours), len(theirs))
labels = sum(o["approve"] == bool(t["label"]) for o, t in zip(ours, theirs))
dp = max(abs(o["probability"] - t["probability"]) for o, t in zip(ours, theirs))
versions = sorted({o["model"]["version"] for o in ours})
print(json.dumps({"rows": len(ours), "same_label": labels, "max_abs_dp": dp, "our_versions": versions}))
assert labels == len(ours) and dp <= 1e-5, "our server and mlflow models serve disagree"
PY
cat "$RES/agreement.json" >&2
