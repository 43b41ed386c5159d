#!/usr/bin/env bash
# bench stage: the decision record's cost (issue 15), side by side in one run.
# Four servers of the same binary on the shipped artifacts: the record off
# (SERVE_DECISIONS_URL=off, benchmarks only), on with SQLite (the default:
# group commit to the journal, one fsync each), SQLite with
# SERVE_DECISIONS_SYNC=normal (no fsync per commit) and on with PostgreSQL (Debian's
# postgresql: a throwaway cluster on a free port, as the postgres user when
# root). Against each, alternating, RECORD_ROUNDS [3] rounds: /v1/predict
# at 32 connections (closed loop), at the fixed RATE (open loop, 32
# connections), and batch rows/s (1,000 applications a request, 2
# connections); each figure is the median of its rounds (this machine's
# runs of the same binary differ several-fold). Targets: on >= 80% of off
# at 32 connections, p99 <= 2 ms at RATE, batch >= 300,000 rows/s.
#
# Run by bench/run.sh (`stage record`) with the environment bench/lib.sh
# describes; alone (builds what it needs):
#   DURATION=5s bench/stages/record.sh
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
standalone record
DURATION=${DURATION:-10s} RATE=${RATE:-5000} ROUNDS=${RECORD_ROUNDS:-3}
R=$WORK/record
mkdir -p "$R"
PG_PID=
stop_all() {
	stop_started
	if [[ -n $PG_PID ]]; then
		kill -INT "$PG_PID" 2>/dev/null || true
		wait "$PG_PID" 2>/dev/null || true
	fi
	[[ -z ${PGDIR:-} ]] || rm -rf "$PGDIR"
	if [[ -n $OWN_WORK && -z ${BENCH_KEEP:-} ]]; then rm -rf "$WORK"; fi
}
trap stop_all EXIT

say "record: PostgreSQL (throwaway cluster)"
PGBIN=$(pg_config --bindir 2>/dev/null || true)
[[ -x $PGBIN/initdb ]] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $PGBIN/initdb ]] || { echo "bench/record: no PostgreSQL; run 'make record-test-deps'" >&2; exit 1; }
# Its own directory: the scratch directory is private to us, and as root the
# cluster belongs to the postgres user.
PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/mlservice-bench-pg-XXXXXX")
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

declare -A URLS
serve() { # NAME SERVE_DECISIONS_URL [SERVE_DECISIONS_SYNC]
	serve_local "record-$1" "$R/$1" SERVE_DECISIONS_URL="$2" SERVE_DECISIONS_SYNC="${3:-full}"
	URLS[$1]=$SERVED
}
say "record: four servers (record off, SQLite, SQLite with SERVE_DECISIONS_SYNC=normal, PostgreSQL)"
SERVERS="off sqlite sqlite-normal postgres"
serve off off
serve sqlite ""
serve sqlite-normal "" normal
serve postgres "$PG_URL"

# Alternate the servers within each round of each kind of run, so a noisy
# neighbour on a shared machine hits them alike.
say "record: /v1/predict, 32 connections (closed loop), $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
	for s in $SERVERS; do
		lg "record-$s-c32-$round" -url "${URLS[$s]}/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -expect '"approve"'
	done
done
say "record: /v1/predict at $RATE req/s (open loop, 32 connections), $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
	for s in $SERVERS; do
		lg "record-$s-rate-$round" -url "${URLS[$s]}/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -rate "$RATE" -expect '"approve"'
	done
done
# A batch run leaves its server indexing the batches afterwards (by design:
# once batches pause), then checkpointing what that wrote. Before the next
# one is measured, wait for every server's index backlog to be taken up and
# then for the machine to be quiet, so one server's background work does not
# run on the cores (or the disk) another's batch run is measured on.
settle() {
	local s i start=$SECONDS
	for s in $SERVERS; do
		for ((i = 0; i < 240; i++)); do # at most 2 minutes a server
			curl -sf "${URLS[$s]}/metrics" | grep -qE '^decision_record_index_backlog\{[^}]*\} [1-9]' || break
			sleep 0.5
		done
	done
	quiet
	if ((SECONDS - start > 2)); then say "record: waited $((SECONDS - start)) s for the servers' background work"; fi
}
say "record: batch rows/s (1,000 applications a request, 2 connections), $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
	for s in $SERVERS; do
		settle
		lg "record-$s-batch-$round" -url "${URLS[$s]}/v1/predict/batch" -bodies "$BODIES/batch.jsonl" -rows 1000 -c 2 -expect '"accepted":1000'
	done
done
for s in sqlite sqlite-normal postgres; do
	curl -sf "${URLS[$s]}/metrics" | grep -E '^decision_record' >"$RES/record-$s-metrics.txt" || true
done

# The version the servers decided with (the embedded artifacts' champion).
curl -sf "${URLS[off]}/ready" >"$RES/record-ready.json"
summarize "$RES" "$RATE" "$RES/record-ready.json" "$ROUNDS" <<'PY'
import json, statistics, sys
from summary import Results, errors, num, share, target
res, rate, rounds = Results(sys.argv[1]), sys.argv[2], int(sys.argv[4])
champion = json.load(open(sys.argv[3]))["champion"]


def median(name):
    """One server's runs of one kind: each figure the median of its rounds,
    errors the sum."""
    runs = res.runs(name, rounds)
    out = {k: statistics.median(r[k] for r in runs) for k in ("rps", "rows_per_s", "p99_ms")}
    out["errors"] = errors(*runs)
    return out


off_c, off_b = median("record-off-c32"), median("record-off-batch")
table = ["| decision record | /v1/predict, 32 connections | of off | p99 at %s req/s | batch rows/s | of off | errors |" % rate,
         "|---|---|---|---|---|---|---|"]
targets = []
for s, label in (("off", "off"), ("sqlite", "SQLite (default, sync full)"), ("sqlite-normal", "SQLite, sync normal"), ("postgres", "PostgreSQL")):
    c, f, b = median("record-%s-c32" % s), median("record-%s-rate" % s), median("record-%s-batch" % s)
    failed = errors(c, f, b)
    cshare, bshare = share(c["rps"], off_c["rps"]), share(b["rows_per_s"], off_b["rows_per_s"])
    table.append("| %s | %s req/s, p99 %.2f ms | %.0f%% | %.2f ms | %s | %.0f%% | %d |" % (
        label, num(c["rps"]), c["p99_ms"], 100 * cshare, f["p99_ms"], num(b["rows_per_s"]), 100 * bshare, failed))
    if s == "off":
        continue
    targets += [
        target("record on (%s) vs off, /v1/predict at 32 connections" % label, ">= 80%",
               "%.0f%% (%s of %s req/s)" % (100 * cshare, num(c["rps"]), num(off_c["rps"])), cshare >= 0.8 and failed == 0),
        target("record on (%s), p99 at %s req/s" % (label, rate), "<= 2 ms", "%.2f ms" % f["p99_ms"], f["p99_ms"] <= 2 and failed == 0),
        target("record on (%s), batch rows/s" % label, ">= 300,000", num(b["rows_per_s"]), b["rows_per_s"] >= 300000 and failed == 0)]
section = "## Decision record: on vs off\n\nSame binary, same embedded artifacts (%s version %s), one run of the stage; the record off is `SERVE_DECISIONS_URL=off`. Each figure is the median of %d alternating rounds.\n\n" % (
    champion["name"], champion["version"], rounds) + "\n".join(table) + "\n"
res.write_section("60-record", section)
res.write_targets("record", targets)
print(section)
print("\n".join(targets))
PY
