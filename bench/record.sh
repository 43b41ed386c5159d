#!/usr/bin/env bash
# bench/record.sh — the decision record's cost, side by side in one run
# (issue 15). Called by bench/run.sh (one line); runs on its own too:
#
#   bench/record.sh [RESULTS_DIR]
#
# Three servers on the shipped artifacts, the same binary: the record off
# (SERVE_DECISIONS_URL=off, benchmarks only), on with SQLite (the default:
# WAL, synchronous=FULL, group commit) and on with PostgreSQL (Debian's
# postgresql, a throwaway cluster on a free port, as the postgres user when
# root). Against each, in turn: /v1/predict at 32 connections (closed loop),
# /v1/predict at a fixed RATE (open loop, 32 connections), and batch rows/s
# (1,000 applications a request, 2 connections). Results: RESULTS_DIR/record-*.json
# and RESULTS_DIR/record.md (a table, also printed).
#
# Variables: DURATION (10s), RATE (5000), WORK (a temp dir). Every process it
# starts listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-10s}
RATE=${RATE:-5000}
export ONNXRUNTIME_SHARED_LIBRARY_PATH=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$ROOT/.cache/onnxruntime/1.24.4/libonnxruntime.so}
export CGO_ENABLED=1
OWN_WORK=
if [[ -z ${WORK:-} ]]; then
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlservice-bench-record-XXXXXX")
	OWN_WORK=1
fi
RES=${1:-$WORK/results}
mkdir -p "$RES" "$WORK/record"
R=$WORK/record
PIDS=()
PG_PID=
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
	[[ -n $PG_PID ]] && kill -INT "$PG_PID" 2>/dev/null || true
	sleep 1
	for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
	[[ -n $PG_PID ]] && kill -KILL "$PG_PID" 2>/dev/null || true
	if [[ -n $OWN_WORK && -z ${BENCH_KEEP:-} ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # URL SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		curl -sf -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "bench/record: $1 not up after $2 s" >&2
	return 1
}

say "record: build"
BIN=$R/bin
mkdir -p "$BIN"
go build -o "$BIN/serve" ./serve
go build -o "$BIN/loadgen" ./bench/loadgen
go build -o "$BIN/bodies" ./bench/bodies
"$BIN/bodies" -out "$R/bodies" -n 1000 -batch 1000

say "record: PostgreSQL (throwaway cluster)"
PGBIN=$(pg_config --bindir 2>/dev/null || true)
[[ -x $PGBIN/initdb ]] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $PGBIN/initdb ]] || { echo "bench/record: no PostgreSQL; run 'make record-test-deps'" >&2; exit 1; }
PGDIR=$R/pg
mkdir -p "$PGDIR"
AS=()
if [[ $(id -u) == 0 ]]; then
	chown postgres: "$PGDIR"
	AS=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi
"${AS[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$R/initdb.log" 2>&1
PG_PORT=$(free_port)
"${AS[@]}" "$PGBIN/postgres" -D "$PGDIR/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
	-c unix_socket_directories="$PGDIR" -c max_connections=100 >"$R/postgres.log" 2>&1 &
PG_PID=$!
for ((i = 0; i < 300; i++)); do
	"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
	sleep 0.1
done
PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"

# serve NAME DECISIONS_URL: one server, its own data and cache.
declare -A URLS
serve() {
	local name=$1 port
	port=$(free_port)
	mkdir -p "$R/$name"
	setsid env SERVE_ADDR="127.0.0.1:$port" SERVE_CACHE_DIR="$R/$name/cache" SERVE_DATA_DIR="$R/$name/data" \
		SERVE_DECISIONS_URL="$2" SERVE_LOG_LEVEL=warn "$BIN/serve" >"$R/$name.log" 2>&1 &
	PIDS+=($!)
	URLS[$name]=http://127.0.0.1:$port
	wait_http "${URLS[$name]}/ready" 60
}
serve off off
serve sqlite ""
serve postgres "$PG_URL"

LG=("$BIN/loadgen" -d "$DURATION" -warmup 2s)
run() { # NAME loadgen-args...
	local name=$1
	shift
	"${LG[@]}" -label "$name" "$@" >"$RES/$name.json"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("  %-24s %9.0f req/s %10.0f rows/s  p50 %7.3f  p99 %8.3f ms  errors %d" % (d["label"], d["rps"], d["rows_per_s"], d["p50_ms"], d["p99_ms"], d["errors"]))' "$RES/$name.json" >&2
}
# Alternate the three servers within each kind of run, so a noisy neighbour
# on a shared machine hits them alike.
say "record: /v1/predict, 32 connections (closed loop)"
for s in off sqlite postgres; do
	run "record-$s-c32" -url "${URLS[$s]}/v1/predict" -bodies "$R/bodies/predict.jsonl" -c 32 -expect '"approve"'
done
say "record: /v1/predict at $RATE req/s (open loop, 32 connections)"
for s in off sqlite postgres; do
	run "record-$s-rate" -url "${URLS[$s]}/v1/predict" -bodies "$R/bodies/predict.jsonl" -c 32 -rate "$RATE" -expect '"approve"'
done
say "record: batch rows/s (1,000 applications a request, 2 connections)"
for s in off sqlite postgres; do
	run "record-$s-batch" -url "${URLS[$s]}/v1/predict/batch" -bodies "$R/bodies/batch.jsonl" -rows 1000 -c 2 -expect '"accepted":1000'
done
for s in sqlite postgres; do
	curl -sf "${URLS[$s]}/metrics" | grep -E '^decision_record' >"$RES/record-$s-metrics.txt" || true
done

python3 - "$RES" "$RATE" <<'EOF' | tee "$RES/record.md"
import json, os, sys
res, rate = sys.argv[1], sys.argv[2]
def r(name):
    with open(os.path.join(res, name + ".json")) as f:
        return json.load(f)
rows = []
off_c32 = r("record-off-c32")["rps"]
off_batch = r("record-off-batch")["rows_per_s"]
print("| record | /v1/predict, 32 connections | vs off | p99 at %s req/s | batch rows/s | vs off | errors |" % rate)
print("|---|---|---|---|---|---|---|")
for s, label in (("off", "off"), ("sqlite", "SQLite (default)"), ("postgres", "PostgreSQL")):
    c, f, b = r("record-%s-c32" % s), r("record-%s-rate" % s), r("record-%s-batch" % s)
    print("| %s | %s req/s, p99 %.2f ms | %.0f%% | %.2f ms | %s | %.0f%% | %d |" % (
        label, format(round(c["rps"]), ","), c["p99_ms"], 100 * c["rps"] / off_c32,
        f["p99_ms"], format(round(b["rows_per_s"]), ","), 100 * b["rows_per_s"] / off_batch,
        c["errors"] + f["errors"] + b["errors"]))
EOF
