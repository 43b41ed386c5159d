#!/usr/bin/env bash
# bench stage: the cost of outcomes and drift monitoring on /v1/predict. Two
# servers of the same build in local mode over a copy of artifacts/ in which
# every version has a training distribution: one with drift monitoring
# (SERVE_DRIFT_WINDOW=1h) and a night's outcomes in its record, one with
# SERVE_DRIFT_WINDOW=0. Closed loop at 32 connections, QUALITY_PAIRS [3]
# alternating pairs. Writes one row of the targets table.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

say "quality: /v1/predict with outcomes and drift monitoring on vs off"
ART=$WORK/quality-artifacts
rm -rf "$ART" && mkdir -p "$ART" && cp -r "$ROOT/artifacts/loan-approval" "$ART/"
python3 - "$ART/loan-approval/versions" <<'PY'
import json, os, sys
# Versions trained before the notebook wrote training distributions get
# deciles of the data's documented ranges, so both servers do the same work.
dec = lambda lo, hi: {"edges": [lo + (hi - lo) * i / 10 for i in range(1, 10)], "shares": [0.1] * 10}
for v in os.listdir(sys.argv[1]):
    p = os.path.join(sys.argv[1], v, "training_distribution.json")
    if not os.path.exists(p):
        json.dump({"format_version": 1, "features": {"income": dec(30000, 150000), "credit_score": dec(300, 850),
                   "loan_amount": dec(1000, 50000), "years_employed": dec(0, 40)}, "score": dec(0, 1)}, open(p, "w"))
PY
# A server on the artifacts above, with drift over DRIFT_WINDOW (0: off).
quality_server() { # NAME DRIFT_WINDOW
	serve_local "$1" "$WORK/$1" SERVE_ARTIFACTS_DIR="$ART" SERVE_ADMIN_TOKEN="$TOKEN" SERVE_DRIFT_WINDOW="$2"
}
quality_server quality-on 1h
ON=$SERVED
quality_server quality-off 0
OFF=$SERVED

# A night's outcomes in the "on" server's record: 1,000 decided applications.
python3 - "$ON" "$TOKEN" <<'PY'
import json, sys, urllib.request
base, token = sys.argv[1], sys.argv[2]
def post(path, body, auth=False):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    if auth:
        req.add_header("Authorization", "Bearer " + token)
    return json.load(urllib.request.urlopen(req, timeout=30))
apps = [{"application_id": f"Q-{i}", "income": 30000 + 97 * i, "credit_score": 300 + i % 551,
         "loan_amount": 1000 + 41 * i, "years_employed": i % 41, "points": 50} for i in range(1000)]
results = post("/v1/predict/batch", {"applications": apps})["results"]
outcomes = [{"application_id": r["application_id"], "approved": r["approve"] if i % 10 else not r["approve"]}
            for i, r in enumerate(results)]
got = post("/v1/outcomes", {"outcomes": outcomes}, auth=True)
assert got["recorded"] == 1000, got
PY

for pair in $(seq "${QUALITY_PAIRS:-3}"); do
	lg "quality-off-$pair" -url "$OFF/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -expect '"approve"'
	lg "quality-on-$pair" -url "$ON/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -expect '"approve"'
done
curl -sf "$ON/metrics" | grep -E '^model_(feature_psi|score_psi|drift_window_decisions|outcomes_total)' >"$RES/quality-metrics.txt" || true

summarize "$RES" "${QUALITY_PAIRS:-3}" <<'PY'
import sys
from summary import Results, errors, mean, num, share, target
res, pairs = Results(sys.argv[1]), int(sys.argv[2])
off, on = res.runs("quality-off", pairs), res.runs("quality-on", pairs)
s = share(mean(on), mean(off))
res.write_targets("quality", [target(
    f"`/v1/predict` with outcomes and drift monitoring on vs off, 32 connections (mean of {pairs} alternating pairs)", "≥ 95%",
    f"{100*s:.1f}% ({num(mean(on))} vs {num(mean(off))} req/s)", s >= 0.95 and errors(*off, *on) == 0)])
PY
cat "$RES/targets/quality.md" >&2
