#!/usr/bin/env bash
# bench stage: the Open Inference Protocol (/v2). Single-row JSON infer
# against /v1/predict at 32 connections (the same applications, routed by the
# same ids; alternating pairs, OIP_PAIRS [2]), and binary-tensor infer of
# 1,000 rows a request over 2 connections, with the scorecard champion (v3)
# and with v1; and the same v3 run against a server of the same binary with
# the decision record off (SERVE_DECISIONS_URL=off, benchmarks only), which
# shows what the protocol path alone does and what the record costs.
# Writes two rows of the targets table.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

INFER=$OURS/v2/models/loan-approval/infer
HLEN=$(cat "$BODIES/oip-batch.hlen")
say "oip: /v2 JSON single row vs /v1/predict at 32 connections; binary 1,000-row infer"
for pair in $(seq "${OIP_PAIRS:-2}"); do
	lg "oip-v1-c32-$pair" -url "$OURS/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -expect '"approve"'
	lg "oip-json-c32-$pair" -url "$INFER" -bodies "$BODIES/oip.jsonl" -c 32 -expect '"probability"'
done
# The record-off server serves the embedded artifacts, whose champion is v3.
serve_local oip-record-off "$WORK/oip-off" SERVE_DECISIONS_URL=off
RECORD_OFF=$SERVED
# First, while the record-on server has no batches to index behind it.
quiet
lg "oip-binary-batch-record-off" -url "$RECORD_OFF/v2/models/loan-approval/infer" -bodies "$BODIES/oip-batch.bin" -raw \
	-header "Inference-Header-Content-Length: $HLEN" -rows 1000 -c 2 -expect '"binary_data_size":4000'
lg "oip-v1-batch" -url "$OURS/v1/predict/batch" -bodies "$BODIES/batch.jsonl" -rows 1000 -c 2 -expect '"accepted":1000'
# The binary goal is the new champion's: the scorecard, version 3.
promote 3
lg "oip-binary-batch" -url "$INFER" -bodies "$BODIES/oip-batch.bin" -raw \
	-header "Inference-Header-Content-Length: $HLEN" -rows 1000 -c 2 -expect '"binary_data_size":4000'
promote 1
lg "oip-binary-batch-v1" -url "$INFER" -bodies "$BODIES/oip-batch.bin" -raw \
	-header "Inference-Header-Content-Length: $HLEN" -rows 1000 -c 2 -expect '"binary_data_size":4000'
promote 2

summarize "$RES" "${OIP_PAIRS:-2}" <<'PY'
import sys
from summary import Results, errors, mean, num, share, target
res, pairs = Results(sys.argv[1]), int(sys.argv[2])
v1, v2 = res.runs("oip-v1-c32", pairs), res.runs("oip-json-c32", pairs)
s = share(mean(v2), mean(v1))
b, b1, v1b = res.load("oip-binary-batch"), res.load("oip-binary-batch-v1"), res.load("oip-v1-batch")
off = res.load("oip-binary-batch-record-off")
res.write_targets("oip", [
    target(f"OIP JSON single-row infer vs `/v1/predict`, 32 connections (mean of {pairs} alternating pairs)", "≥ 70%",
           f"{100*s:.0f}% ({num(mean(v2))} of {num(mean(v1))} req/s, p99 {max(r['p99_ms'] for r in v2):.2f} ms)",
           s >= 0.7 and errors(*v1, *v2) == 0),
    target("OIP binary infer, 1,000 rows a request, 2 connections, the record on (champion v3; v1; `/v1/predict/batch` with v2 alongside)",
           "≥ 1,000,000 rows/s", f"{num(b['rows_per_s'])}; {num(b1['rows_per_s'])}; {num(v1b['rows_per_s'])}",
           b["rows_per_s"] >= 1e6 and b["errors"] == 0),
    target("OIP binary infer, the same v3 run with the record off (`SERVE_DECISIONS_URL=off`: the protocol path alone)",
           "≥ 1,000,000 rows/s", f"{num(off['rows_per_s'])} (the record on: {100*share(b['rows_per_s'], off['rows_per_s']):.0f}% of it)",
           off["rows_per_s"] >= 1e6 and off["errors"] == 0)])
PY
cat "$RES/targets/oip.md" >&2
