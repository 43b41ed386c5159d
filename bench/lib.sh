# bench/lib.sh — sourced by bench/run.sh and by every stage script in
# bench/stages/. A stage is one executable script, run by run.sh as
#   bench/stages/NAME.sh
# with the environment below; it writes its results into $RES (loadgen JSON
# files through `lg`, text files, and optionally a report section
# $RES/sections/NN-NAME.md and target rows $RES/targets/NAME.md, which
# bench/report puts into BENCHMARKS.md as they are). A stage that needs its
# own servers starts them with `start` (stopped when the stage exits) and
# must bind 127.0.0.1 on a `free_port`.
#
# What run.sh exports for the stages:
#   ROOT WORK RES BIN BODIES VENV   repo, scratch dir, results dir, built binaries
#                                   (serve loadgen floor bodies report), request bodies
#                                   (predict.jsonl batch.jsonl invocations*.jsonl)
#   OURS SCORE FLOOR MLFLOW_URI     our server (MLflow mode, champion 2), `mlflow models
#                                   serve` of version 2, the bare Fiber floor, MLflow
#   TOKEN                           admin bearer token of $OURS
#   DURATION RATE SWAP_RATE SWAP_DURATION SOAK FUZZTIME BENCHTIME PROFILETIME
#                                   the knobs (bench/run.sh's header)
#   ONNXRUNTIME_SHARED_LIBRARY_PATH CGO_ENABLED

# standalone NAME : a stage run by hand, without run.sh, gets a scratch
# directory ($WORK, $RES) with the binaries and bodies a stage uses, and
# OWN_WORK=1 so it may remove it; under run.sh it does nothing.
OWN_WORK=
standalone() {
	[[ -z ${WORK:-} ]] || return 0
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlservice-bench-$1-XXXXXX")
	OWN_WORK=1
	RES=$WORK/results BIN=$WORK/bin BODIES=$WORK/bodies
	mkdir -p "$RES/sections" "$RES/targets" "$BIN"
	export ONNXRUNTIME_SHARED_LIBRARY_PATH=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$ROOT/.cache/onnxruntime/1.24.4/libonnxruntime.so}
	export CGO_ENABLED=1
	go build -o "$BIN/serve" ./serve
	go build -o "$BIN/loadgen" ./bench/loadgen
	go build -o "$BIN/bodies" ./bench/bodies
	"$BIN/bodies" -out "$BODIES" -n 1000 -batch 1000
	echo "bench/$1: results in $RES" >&2
}

say() { printf '\n== %s\n' "$*" >&2; }

# bench/, where summary.py is (this file's directory, whoever sources it).
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# summarize ARGS... : a stage's Python summary, read from stdin, with ARGS as
# sys.argv[1:] and bench/summary.py importable (`from summary import ...`).
summarize() { PYTHONPATH="$BENCH_DIR${PYTHONPATH:+:$PYTHONPATH}" python3 - "$@"; }

# free_port: a port free on 127.0.0.1, below the kernel's ephemeral range
# (as internal/freeport does for the Go tests): a server binds it seconds
# later, and in that range an outgoing connection could take it meanwhile.
free_port() {
	python3 - <<'PY'
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
for _ in range(100):
    port = random.randrange(10000, max(low, 11000))
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
        print(port)
        break
    except OSError:
        pass
else:
    raise SystemExit("bench: no free loopback port")
PY
}

# start NAME CMD... : CMD in its own session (its pid is its process group),
# logging to $WORK/NAME.log; stopped by stop_started on exit.
BENCH_PIDS=()
start() {
	local name=$1
	shift
	setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
	BENCH_PIDS+=($!)
}
stop_started() {
	local pid
	[ "${#BENCH_PIDS[@]}" -gt 0 ] || return 0
	for pid in "${BENCH_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
	sleep 1
	for pid in "${BENCH_PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
	BENCH_PIDS=()
}

# serve_local NAME DIR [VAR=VALUE...] : our server on a free port, on the
# embedded artifacts (no MLflow) with its cache and data under DIR, the VARs
# added to (or overriding) that environment; waits until it is ready and
# sets SERVED to its URL. Stopped by stop_started; not to be called in
# $(...), where start would record the pid in a subshell.
serve_local() {
	local name=$1 dir=$2 port
	shift 2
	port=$(free_port)
	start "$name" env SERVE_ADDR="127.0.0.1:$port" SERVE_CACHE_DIR="$dir/cache" SERVE_DATA_DIR="$dir/data" \
		SERVE_LOG_LEVEL=warn MLFLOW_TRACKING_URI= "$@" "$BIN/serve"
	SERVED=http://127.0.0.1:$port
	wait_http "$SERVED/ready" 60
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

# quiet waits (at most 30 s) until a second passes with the machine busy
# (anything but idle, I/O wait included) under 10% of the time, so one
# server's background work (a record indexing its batches) does not run on
# the cores another's run is measured on.
quiet() {
	local i k a b total idle
	for ((i = 0; i < 30; i++)); do
		read -ra a </proc/stat
		sleep 1
		read -ra b </proc/stat
		total=0 idle=$((b[4] - a[4]))
		for k in 1 2 3 4 5 6 7 8; do total=$((total + b[k] - a[k])); done
		if ((10 * (total - idle) < total)); then return 0; fi
	done
}

# lg NAME loadgen-args... : one load run (-d $DURATION, 2 s warm-up unless
# given), its JSON in $RES/NAME.json (label NAME), one summary line on stderr.
lg() {
	local name=$1
	shift
	"$BIN/loadgen" -d "$DURATION" -warmup 2s -label "$name" "$@" >"$RES/$name.json"
	summary "$RES/$name.json"
}
summary() { # RESULT.json
	python3 "$BENCH_DIR/summary.py" line "$1" >&2
}

# admin PATH JSON : POST to $OURS/admin/PATH with the admin token.
admin() {
	curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data "$2" "$OURS/admin/$1" >/dev/null
}
promote() { admin promote "{\"version\":\"$1\"}"; } # VERSION: the champion
