#!/usr/bin/env bash
# `make bench`: every benchmark in one go, on loopback, then BENCHMARKS.md.
#
#   1. Go micro-benchmarks (decode + validate, feature mapping, ONNX runs at
#      batch 1/64/1024, the whole handler in-process) and a CPU profile of
#      /v1/predict on the in-process harness;
#   2. a throwaway real MLflow server with the shipped versions 1 and 2
#      registered the way the notebook does (champion = 2); our server in
#      MLflow mode against it, `mlflow models serve` of the same version 2, and
#      a bare Fiber floor server;
#   3. the same applications, the same load generator (bench/loadgen): 1, 8
#      and 32 connections against each, a fixed rate, the fixed rate with
#      and without a shadow, batch rows/s;
#   4. 60 s at a fixed rate with a promote every 5 s (swap under load);
#   5. the soak (SOAK, default 10m) with swaps, sampling /metrics;
#   6. a long run of each fuzz target (FUZZTIME, default 2m each).
#
# Variables: DURATION (10s per load run), SOAK (10m; e.g. SOAK=1m), FUZZTIME
# (2m; 0 skips), RATE (5000, the fixed-rate run), SWAP_RATE (2000),
# MLFLOW_WORKERS (2 uvicorn workers for `mlflow models serve`, one per core),
# BENCH_OUT (BENCHMARKS.md). Every process it starts listens on 127.0.0.1 and
# is stopped on exit, whatever happens.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-10s}
SOAK=${SOAK:-10m}
FUZZTIME=${FUZZTIME:-2m}
RATE=${RATE:-5000}
SWAP_RATE=${SWAP_RATE:-2000}
MLFLOW_WORKERS=${MLFLOW_WORKERS:-2}
BENCH_OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
export ONNXRUNTIME_SHARED_LIBRARY_PATH=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$ROOT/.cache/onnxruntime/1.24.4/libonnxruntime.so}
export CGO_ENABLED=1
VENV=$ROOT/notebooks/.venv
TOKEN=bench-admin-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
COMMAND="make bench DURATION=$DURATION SOAK=$SOAK FUZZTIME=$FUZZTIME RATE=$RATE SWAP_RATE=$SWAP_RATE MLFLOW_WORKERS=$MLFLOW_WORKERS"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlservice-bench-XXXXXX")
RES=$WORK/results
mkdir -p "$RES" "$WORK/bin"
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do # each started with setsid: its pid is its group
		kill -TERM -- "-$pid" 2>/dev/null || true
	done
	sleep 1
	for pid in "${PIDS[@]}"; do
		kill -KILL -- "-$pid" 2>/dev/null || true
	done
	if [[ -z "${BENCH_KEEP:-}" ]]; then rm -rf "$WORK"; else echo "bench: kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*" >&2; }
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start NAME CMD... : runs CMD in its own session, logs to $WORK/NAME.log.
start() {
	local name=$1
	shift
	setsid "$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
}
wait_http() { # URL SECONDS
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		curl -sf -o /dev/null "$1" && return 0
		sleep 0.2
	done
	echo "bench: $1 not up after $2 s" >&2
	return 1
}

wait_port() { # PORT SECONDS
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.2
	done
	echo "bench: nothing listens on 127.0.0.1:$1 after $2 s" >&2
	return 1
}

[[ -x $VENV/bin/mlflow ]] || { echo "bench: no $VENV/bin/mlflow; run 'make notebooks-env'" >&2; exit 1; }
[[ -f $ONNXRUNTIME_SHARED_LIBRARY_PATH ]] || { echo "bench: no ONNX Runtime at $ONNXRUNTIME_SHARED_LIBRARY_PATH; run 'make ort'" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench: needs curl" >&2; exit 1; }

say "build"
go build -o "$WORK/bin/serve" ./serve
for t in loadgen floor bodies report; do go build -o "$WORK/bin/$t" "./bench/$t"; done
"$WORK/bin/bodies" -out "$WORK/bodies" -n 1000 -batch 1000

say "Go micro-benchmarks"
go test -run '^$' -bench . -benchmem -benchtime 2s -count 1 ./bench | tee "$RES/micro.txt" >&2

say "CPU profile of /v1/predict (in-process harness)"
go test -run '^$' -bench '^BenchmarkPredictHTTP$' -benchtime 5s -count 1 \
	-cpuprofile "$WORK/cpu.prof" -o "$WORK/bench.test" ./bench >"$RES/profile-bench.txt"
go tool pprof -top -nodecount=30 "$WORK/bench.test" "$WORK/cpu.prof" >"$RES/profile-flat.txt" 2>/dev/null
go tool pprof -top -cum -nodecount=40 "$WORK/bench.test" "$WORK/cpu.prof" >"$RES/profile-cum.txt" 2>/dev/null
head -20 "$RES/profile-flat.txt" >&2

say "MLflow: server, registration of the shipped versions, scoring server"
export PATH=$VENV/bin:$PATH # mlflow models serve runs uvicorn through the shell
MLFLOW_PORT=$(free_port)
MLFLOW_URI=http://127.0.0.1:$MLFLOW_PORT
mkdir -p "$WORK/mlflow"
start mlflow-server env -u MLFLOW_TRACKING_URI mlflow server \
	--backend-store-uri "sqlite:///$WORK/mlflow/mlflow.db" --serve-artifacts \
	--artifacts-destination "$WORK/mlflow/artifacts" --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1
wait_http "$MLFLOW_URI/health" 180
(cd "$WORK" && python "$ROOT/internal/mlflowtest/register_version.py" "$MLFLOW_URI" loan-approval \
	"$ROOT/artifacts/loan-approval/versions/1" "$ROOT/artifacts/loan-approval/versions/2") >"$RES/registered.jsonl" 2>"$WORK/register.log"
python -c 'import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).set_registered_model_alias("loan-approval", "champion", "2")' "$MLFLOW_URI"
SCORE_PORT=$(free_port)
start mlflow-serve env MLFLOW_TRACKING_URI="$MLFLOW_URI" mlflow models serve -m models:/loan-approval/2 \
	--env-manager local --host 127.0.0.1 --port "$SCORE_PORT" --workers "$MLFLOW_WORKERS"

say "our server (MLflow mode) and the floor"
SERVE_PORT=$(free_port)
start serve env SERVE_ADDR="127.0.0.1:$SERVE_PORT" SERVE_CACHE_DIR="$WORK/serve-cache" \
	MLFLOW_TRACKING_URI="$MLFLOW_URI" SERVE_ADMIN_TOKEN="$TOKEN" SERVE_LOG_LEVEL=info "$WORK/bin/serve"
FLOOR_PORT=$(free_port)
start floor "$WORK/bin/floor" -addr "127.0.0.1:$FLOOR_PORT"
OURS=http://127.0.0.1:$SERVE_PORT
SCORE=http://127.0.0.1:$SCORE_PORT
FLOOR=http://127.0.0.1:$FLOOR_PORT
wait_http "$OURS/ready" 120
wait_port "$FLOOR_PORT" 30
wait_http "$SCORE/ping" 180
curl -sf "$OURS/ready" >"$RES/ours-ready.json"

# Both servers must decide the same applications the same way before we time them.
curl -sf -H 'Content-Type: application/json' --data-binary @"$WORK/bodies/batch.jsonl" "$OURS/v1/predict/batch" >"$WORK/ours-batch.json"
curl -sf -H 'Content-Type: application/json' --data-binary @"$WORK/bodies/invocations-batch.jsonl" "$SCORE/invocations" >"$WORK/mlflow-batch.json"
python - "$WORK/ours-batch.json" "$WORK/mlflow-batch.json" >"$RES/agreement.json" <<'EOF'
import json, sys
ours = json.load(open(sys.argv[1]))["results"]
theirs = json.load(open(sys.argv[2]))["predictions"]
assert len(ours) == len(theirs), (len(ours), len(theirs))
labels = sum(o["approve"] == bool(t["label"]) for o, t in zip(ours, theirs))
dp = max(abs(o["probability"] - t["probability"]) for o, t in zip(ours, theirs))
versions = sorted({o["model"]["version"] for o in ours})
print(json.dumps({"rows": len(ours), "same_label": labels, "max_abs_dp": dp, "our_versions": versions}))
assert labels == len(ours) and dp <= 1e-5, "our server and mlflow models serve disagree"
EOF
cat "$RES/agreement.json" >&2

LG=("$WORK/bin/loadgen" -d "$DURATION" -warmup 2s)
run() { # NAME loadgen-args...
	local name=$1
	shift
	"${LG[@]}" -label "$name" "$@" >"$RES/$name.json"
	python -c 'import json,sys; d=json.load(open(sys.argv[1])); print("  %-22s %9.0f req/s  p50 %7.3f  p99 %8.3f ms  errors %d" % (d["label"], d["rps"], d["p50_ms"], d["p99_ms"], d["errors"]))' "$RES/$name.json" >&2
}

say "load: 1, 8, 32 connections, closed loop (floor, ours, mlflow)"
for c in 1 8 32; do
	run "floor-c$c" -url "$FLOOR/v1/predict" -bodies "$WORK/bodies/predict.jsonl" -c "$c" -expect '"approve"'
	run "ours-c$c" -url "$OURS/v1/predict" -bodies "$WORK/bodies/predict.jsonl" -c "$c" -expect '"approve"'
	run "mlflow-c$c" -url "$SCORE/invocations" -bodies "$WORK/bodies/invocations.jsonl" -c "$c" -expect '"predictions"'
done

say "fixed rate: $RATE req/s (open loop, 32 connections)"
run "ours-rate" -url "$OURS/v1/predict" -bodies "$WORK/bodies/predict.jsonl" -c 32 -rate "$RATE" -expect '"approve"'

say "shadow cost: the same fixed rate with and without a shadow (three alternating pairs)"
# The shadow is set and retired through the admin API (MLflow first, then
# reconcile), so each run starts from the state it names.
admin() { # PATH JSON
	curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data "$2" "$OURS/admin/$1" >/dev/null
}
shadow_on() { admin promote '{"alias":"shadow","version":"1"}'; }
shadow_off() { admin retire '{"alias":"shadow"}'; }
for pair in 1 2 3; do
	run "shadow-off-$pair" -url "$OURS/v1/predict" -bodies "$WORK/bodies/predict.jsonl" -c 32 -rate "$RATE" -expect '"approve"'
	shadow_on
	run "shadow-on-$pair" -url "$OURS/v1/predict" -bodies "$WORK/bodies/predict.jsonl" -c 32 -rate "$RATE" -expect '"approve"'
	shadow_off
done
curl -sf "$OURS/metrics" | grep -E '^model_shadow_predictions_total' >"$RES/shadow-metrics.txt" || true

say "batch rows/s (1,000 applications a request, 2 connections)"
run "ours-batch-v2" -url "$OURS/v1/predict/batch" -bodies "$WORK/bodies/batch.jsonl" -rows 1000 -c 2 -expect '"accepted":1000'
run "mlflow-batch-v2" -url "$SCORE/invocations" -bodies "$WORK/bodies/invocations-batch.jsonl" -rows 1000 -c 2 -expect '"predictions"'
promote() { admin promote "{\"version\":\"$1\"}"; }
promote 1
run "ours-batch-v1" -url "$OURS/v1/predict/batch" -bodies "$WORK/bodies/batch.jsonl" -rows 1000 -c 2 -expect '"accepted":1000'
promote 2

say "swap under load: 60 s at $SWAP_RATE req/s, promote every 5 s (1, 2, 1, ...) vs. 30 s steady"
"${LG[@]}" -label swap-steady -d 30s -url "$OURS/v1/predict" -bodies "$WORK/bodies/predict.jsonl" -c 32 -rate "$SWAP_RATE" >"$RES/swap-steady.json"
"${LG[@]}" -label swap -d 60s -url "$OURS/v1/predict" -bodies "$WORK/bodies/predict.jsonl" -c 32 -rate "$SWAP_RATE" \
	-promote-url "$OURS/admin/promote" -admin-token "$TOKEN" -promote-every 5s -promote-versions 1,2 >"$RES/swap.json"
promote 2

say "soak: $SOAK at $SWAP_RATE req/s, promote every 30 s, /metrics every 10 s"
"${LG[@]}" -label soak -warmup 0s -d "$SOAK" -url "$OURS/v1/predict" -bodies "$WORK/bodies/predict.jsonl" -c 32 -rate "$SWAP_RATE" \
	-promote-url "$OURS/admin/promote" -admin-token "$TOKEN" -promote-every 30s -promote-versions 1,2 \
	-metrics-url "$OURS/metrics" -metrics-every 10s >"$RES/soak.json"
sleep 3 # let the last retired session drain
promote 2 || true
sleep 2
curl -sf "$OURS/metrics" | grep -E '^(model_sessions_open|model_info|process_resident_memory_bytes|go_goroutines)' >"$RES/soak-after.txt" || true
grep -c '"model version live"' "$WORK/serve.log" >"$RES/log-live.txt" || true
grep -c '"model version retired"' "$WORK/serve.log" >"$RES/log-retired.txt" || true

if [[ $FUZZTIME != 0 ]]; then
	say "fuzz: $FUZZTIME per target"
	{
		go test -run='^$' -fuzz='^FuzzDecodeApplication$' -fuzztime="$FUZZTIME" ./schemas 2>&1 | tail -3
		go test -run='^$' -fuzz='^FuzzPredict$' -fuzztime="$FUZZTIME" ./serve/api 2>&1 | tail -3
		go test -run='^$' -fuzz='^FuzzWebhook$' -fuzztime="$FUZZTIME" ./serve/hooks 2>&1 | tail -3
	} | tee "$RES/fuzz.txt" >&2
fi

say "report"
{
	echo "nproc=$(nproc)"
	echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
	echo "mem=$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
	echo "kernel=$(uname -r)"
	echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
	echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "go=$(go env GOVERSION)"
	echo "mlflow=$(mlflow --version 2>/dev/null | awk '{print $NF}')"
	echo "onnxruntime=$(basename "$(dirname "$ONNXRUNTIME_SHARED_LIBRARY_PATH")")"
	echo "command=$COMMAND"
	echo "mlflow_workers=$MLFLOW_WORKERS"
} >"$RES/machine.txt"
"$WORK/bin/report" -results "$RES" -notes "$ROOT/bench/notes.md" -out "$BENCH_OUT"
echo "bench: wrote $BENCH_OUT" >&2
