#!/usr/bin/env bash
# `make bench`: every benchmark in one go, on loopback, then BENCHMARKS.md.
#
# run.sh builds the binaries and request bodies, starts the shared servers
# (a throwaway real MLflow with the shipped versions 1, 2 and 3 registered the
# way the notebook does, champion = 2; our server in MLflow mode against it;
# `mlflow models serve` of the same version 2; a bare Fiber floor server),
# then runs the stages, one line each: bench/stages/NAME.sh, with the
# environment bench/lib.sh describes. To add a benchmark, write a stage
# script and add one `stage` line below. A failed stage is reported and the
# others still run; the bench then exits 1.
#
# Knobs (environment or make variables):
#   DURATION [10s]       each load run          RATE [5000]       the fixed-rate runs
#   SOAK [10m]           the soak               SWAP_RATE [2000]  swap and soak rate
#   SWAP_DURATION [60s]  the swap-under-load run (steady: half of it)
#   FUZZTIME [2000000x]  executions of each fuzz target (0 skips)
#   BENCHTIME [2s]       Go micro-benchmarks    PROFILETIME [5s]  the CPU profile
#   MLFLOW_WORKERS [2]   uvicorn workers of `mlflow models serve`, one per core
#   RECORD_ROUNDS [3]    alternating rounds of the record stage (medians)
#   BENCH_STAGES [all]   only these stages, e.g. "load rate" (servers start only
#                        when a selected stage needs them)
#   BENCH_OUT [BENCHMARKS.md]   BENCH_KEEP=1 keeps the scratch directory
# A smoke run of every stage in about 4 minutes:
#   make bench DURATION=2s SOAK=20s SWAP_DURATION=10s FUZZTIME=0 BENCHTIME=100ms \
#     PROFILETIME=1s BENCH_OUT=/tmp/BENCHMARKS.md
# Every process it starts listens on 127.0.0.1 and is stopped on exit,
# whatever happens.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
export ROOT
export DURATION=${DURATION:-10s} SOAK=${SOAK:-10m} FUZZTIME=${FUZZTIME:-2000000x} RATE=${RATE:-5000}
export SWAP_RATE=${SWAP_RATE:-2000} SWAP_DURATION=${SWAP_DURATION:-60s}
export BENCHTIME=${BENCHTIME:-2s} PROFILETIME=${PROFILETIME:-5s}
MLFLOW_WORKERS=${MLFLOW_WORKERS:-2}
BENCH_STAGES=${BENCH_STAGES:-}
BENCH_OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
export ONNXRUNTIME_SHARED_LIBRARY_PATH=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$ROOT/.cache/onnxruntime/1.24.4/libonnxruntime.so}
export CGO_ENABLED=1
export VENV=$ROOT/notebooks/.venv
export TOKEN=bench-admin-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
COMMAND="make bench DURATION=$DURATION SOAK=$SOAK SWAP_DURATION=$SWAP_DURATION FUZZTIME=$FUZZTIME RATE=$RATE SWAP_RATE=$SWAP_RATE BENCHTIME=$BENCHTIME PROFILETIME=$PROFILETIME MLFLOW_WORKERS=$MLFLOW_WORKERS${BENCH_STAGES:+ BENCH_STAGES=\"$BENCH_STAGES\"}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlservice-bench-XXXXXX")
export WORK RES=$WORK/results BIN=$WORK/bin BODIES=$WORK/bodies
mkdir -p "$RES/sections" "$RES/targets" "$BIN"
cleanup() {
	stop_started
	if [[ -z "${BENCH_KEEP:-}" ]]; then rm -rf "$WORK"; else echo "bench: kept $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# `make bench` provides these (deps, notebooks-env); say so when run by hand.
[[ -x $VENV/bin/mlflow ]] || { echo "bench: no $VENV/bin/mlflow; run it as 'make bench' (or 'make notebooks-env' first)" >&2; exit 1; }
[[ -f $ONNXRUNTIME_SHARED_LIBRARY_PATH ]] || { echo "bench: no ONNX Runtime at $ONNXRUNTIME_SHARED_LIBRARY_PATH; run it as 'make bench' (or 'make ort' first)" >&2; exit 1; }

selected() { [[ -z $BENCH_STAGES || " $BENCH_STAGES " == *" $1 "* ]]; }
FAILED=()
# stage NAME : runs bench/stages/NAME.sh if selected; records its time and result.
stage() {
	local name=$1 t0=$SECONDS rc=0
	selected "$name" || return 0
	bash "$ROOT/bench/stages/$name.sh" || rc=$?
	if [[ $rc == 0 ]]; then
		echo "$name ok $((SECONDS - t0))" >>"$RES/stages.txt"
	else
		echo "$name failed $((SECONDS - t0))" >>"$RES/stages.txt"
		echo "bench: stage $name failed (exit $rc); going on with the others" >&2
		FAILED+=("$name")
	fi
}

say "build"
go build -o "$BIN/serve" ./serve
for t in loadgen floor bodies report; do go build -o "$BIN/$t" "./bench/$t"; done
"$BIN/bodies" -out "$BODIES" -n 1000 -batch 1000

stage micro # Go micro-benchmarks and the CPU profile (no server needed)

# The shared servers, for every stage below.
servers() {
	say "MLflow: server, registration of the shipped versions, scoring server"
	export PATH=$VENV/bin:$PATH # mlflow models serve runs uvicorn through the shell
	local port
	port=$(free_port)
	export MLFLOW_URI=http://127.0.0.1:$port
	mkdir -p "$WORK/mlflow"
	start mlflow-server env -u MLFLOW_TRACKING_URI mlflow server \
		--backend-store-uri "sqlite:///$WORK/mlflow/mlflow.db" --serve-artifacts \
		--artifacts-destination "$WORK/mlflow/artifacts" --host 127.0.0.1 --port "$port" --workers 1
	wait_http "$MLFLOW_URI/health" 180
	(cd "$WORK" && python "$ROOT/internal/mlflowtest/register_version.py" "$MLFLOW_URI" loan-approval \
		"$ROOT/artifacts/loan-approval/versions/1" "$ROOT/artifacts/loan-approval/versions/2" \
		"$ROOT/artifacts/loan-approval/versions/3") >"$RES/registered.jsonl" 2>"$WORK/register.log"
	python -c 'import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).set_registered_model_alias("loan-approval", "champion", "2")' "$MLFLOW_URI"
	port=$(free_port)
	export SCORE=http://127.0.0.1:$port
	start mlflow-serve env MLFLOW_TRACKING_URI="$MLFLOW_URI" mlflow models serve -m models:/loan-approval/2 \
		--env-manager local --host 127.0.0.1 --port "$port" --workers "$MLFLOW_WORKERS"

	say "our server (MLflow mode) and the floor"
	port=$(free_port)
	export OURS=http://127.0.0.1:$port
	start serve env SERVE_ADDR="127.0.0.1:$port" SERVE_CACHE_DIR="$WORK/serve-cache" SERVE_DATA_DIR="$WORK/serve-data" \
		MLFLOW_TRACKING_URI="$MLFLOW_URI" SERVE_ADMIN_TOKEN="$TOKEN" SERVE_LOG_LEVEL=info SERVE_ALLOW_VERSIONS_WITHOUT_REASONS=true "$BIN/serve"
	local floor
	floor=$(free_port)
	export FLOOR=http://127.0.0.1:$floor
	start floor "$BIN/floor" -addr "127.0.0.1:$floor"
	wait_http "$OURS/ready" 120
	wait_port "$floor" 30
	wait_http "$SCORE/ping" 180
	curl -sf "$OURS/ready" >"$RES/ours-ready.json"
}
# Stages that need no shared server; any other selected stage gets them.
NO_SERVER_STAGES=" micro fuzz quality record "
needs_servers=0
[[ -n $BENCH_STAGES ]] || needs_servers=1
for s in $BENCH_STAGES; do [[ $NO_SERVER_STAGES == *" $s "* ]] || needs_servers=1; done
[[ $needs_servers == 0 ]] || servers

# One line per benchmark stage, in this order (bench/stages/NAME.sh).
stage agreement # both servers decide the same 1,000 applications alike
stage load      # closed loop at 1, 8, 32 connections: floor, ours, mlflow
stage rate      # fixed RATE, open loop
stage shadow    # the fixed rate with and without a shadow, alternating pairs
stage batch     # batch rows/s, v2 and v1, ours and mlflow
stage oip       # /v2: JSON single row vs /v1/predict, binary 1,000-row infer
stage quality   # outcomes and drift monitoring on vs off at 32 connections
stage swap      # swap under load: a promote every 5 s
stage soak      # SOAK with swaps, sampling /metrics
stage record    # the decision record on vs off (SQLite, PostgreSQL): its own servers, medians of rounds
stage lb        # one replica through HAProxy vs direct: the load balancer's cost per request
stage fuzz      # FUZZTIME executions of each fuzz target

say "report"
{
	echo "nproc=$(nproc)"
	echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
	echo "mem=$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
	echo "kernel=$(uname -r)"
	echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
	echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "go=$(go env GOVERSION)"
	echo "mlflow=$("$VENV/bin/mlflow" --version 2>/dev/null | awk '{print $NF}')"
	echo "onnxruntime=$(basename "$(dirname "$ONNXRUNTIME_SHARED_LIBRARY_PATH")")"
	echo "command=$COMMAND"
	echo "mlflow_workers=$MLFLOW_WORKERS"
} >"$RES/machine.txt"
"$BIN/report" -results "$RES" -notes "$ROOT/bench/notes.md" -out "$BENCH_OUT"
echo "bench: wrote $BENCH_OUT" >&2
if [[ ${#FAILED[@]} -gt 0 ]]; then
	echo "bench: failed stages: ${FAILED[*]}" >&2
	exit 1
fi
