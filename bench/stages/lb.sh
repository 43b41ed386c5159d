#!/usr/bin/env bash
# bench stage: the load balancer's cost per request (issue 18). One replica,
# reached directly and through HAProxy (Debian's haproxy with the very
# configuration `make stack` writes: stack/stack.sh haproxy-config, one
# server line), side by side in one run, alternating: /v1/predict at 32
# connections (closed loop) and at the fixed RATE (open loop). Reported:
# throughput through HAProxy as a share of direct, the latency it adds at
# the fixed rate, and HAProxy's own CPU time per request (from /proc).
#
# Run by bench/run.sh (`stage lb`) against the shared server $OURS; alone it
# starts its own server on the shipped artifacts:
#   DURATION=5s bench/stages/lb.sh
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
command -v haproxy >/dev/null || { echo "bench/lb: no haproxy; run 'make stack-deps'" >&2; exit 1; }
standalone lb
DURATION=${DURATION:-10s} RATE=${RATE:-5000}
L=$WORK/lb
mkdir -p "$L"
trap stop_started EXIT

if [[ -z ${OURS:-} ]]; then
	say "lb: our server on the shipped artifacts"
	serve_local lb-serve "$L"
	OURS=$SERVED
fi
direct_port=${OURS##*:}
lb_port=$(free_port)
STACK_HOST=127.0.0.1 STACK_LB_PORT=$lb_port STACK_LB_STATS_PORT=$(free_port) STACK_SERVE_PORT=$direct_port STACK_REPLICAS=1 \
	bash "$ROOT/stack/stack.sh" haproxy-config >"$L/haproxy.cfg"
haproxy -c -q -f "$L/haproxy.cfg"
say "lb: HAProxy $(haproxy -v | sed -n '1s/HAProxy version \([^ ]*\).*/\1/p') on :$lb_port in front of $OURS"
# -db: foreground; the access log (one line a request, to its log file) is
# part of the cost, as configured.
start lb-haproxy haproxy -db -f "$L/haproxy.cfg"
LB=http://127.0.0.1:$lb_port
for ((i = 0; i < 100; i++)); do
	[[ $(curl -sf "$LB/-/lb" 2>/dev/null) == '{"up":1}' ]] && break
	sleep 0.1
done
[[ $(curl -sf "$LB/-/lb") == '{"up":1}' ]] || { echo "bench/lb: HAProxy has no replica in rotation" >&2; exit 1; }
HAPROXY_PID=$(pgrep -f "haproxy -db -f $L/haproxy.cfg" | head -1)

# cpu_ticks PID: user+system clock ticks of a process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Alternate direct and through HAProxy, twice each, so a noisy neighbour on a
# shared machine hits both alike.
for round in 1 2; do
	for via in direct haproxy; do
		url=$OURS
		[[ $via == haproxy ]] && url=$LB
		say "lb: $via, /v1/predict, 32 connections (round $round)"
		t0=$(cpu_ticks "$HAPROXY_PID")
		lg "lb-$via-c32-$round" -url "$url/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -expect '"approve"'
		echo $(($(cpu_ticks "$HAPROXY_PID") - t0)) >"$RES/lb-$via-c32-$round.ticks"
		say "lb: $via, /v1/predict at $RATE req/s (round $round)"
		t0=$(cpu_ticks "$HAPROXY_PID")
		lg "lb-$via-rate-$round" -url "$url/v1/predict" -bodies "$BODIES/predict.jsonl" -c 32 -rate "$RATE" -expect '"approve"'
		echo $(($(cpu_ticks "$HAPROXY_PID") - t0)) >"$RES/lb-$via-rate-$round.ticks"
	done
done

summarize "$RES" "$RATE" "$(getconf CLK_TCK)" <<'PY'
import sys
from summary import Results, errors, num
res, rate, hz = Results(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def pooled(via, kind):
    names = ["lb-%s-%s-%d" % (via, kind, r) for r in (1, 2)]
    runs = [res.load(n) for n in names]
    # CPU ticks cover the 2 s warm-up too: count its requests at the run's rate.
    n = sum(r["requests"] * (r["seconds"] + 2) / r["seconds"] for r in runs)
    return {"rps": sum(r["rps"] for r in runs) / 2, "p50": sum(r["p50_ms"] for r in runs) / 2,
            "p99": sum(r["p99_ms"] for r in runs) / 2, "errors": errors(*runs),
            "requests": n, "cpu_s": sum(int(res.text(n + ".ticks")) for n in names) / hz}
d32, h32 = pooled("direct", "c32"), pooled("haproxy", "c32")
dr, hr = pooled("direct", "rate"), pooled("haproxy", "rate")
cpu_us = lambda p: 1e6 * p["cpu_s"] / p["requests"] if p["requests"] else float("nan")
table = ["| one replica | /v1/predict, 32 connections | p99 | at %s req/s: p50 | p99 | errors |" % rate,
         "|---|---|---|---|---|---|",
         "| direct | %s req/s | %.2f ms | %.3f ms | %.3f ms | %d |" % (num(d32["rps"]), d32["p99"], dr["p50"], dr["p99"], d32["errors"] + dr["errors"]),
         "| through HAProxy | %s req/s (%.0f%%) | %.2f ms | %.3f ms | %.3f ms | %d |" % (
             num(h32["rps"]), 100 * h32["rps"] / d32["rps"], h32["p99"], hr["p50"], hr["p99"], h32["errors"] + hr["errors"])]
cost = ("HAProxy's cost per request: %+.3f ms at p50 and %+.3f ms at p99 at %s req/s; "
        "%.1f µs of HAProxy CPU per request at 32 connections (%.1f µs at the fixed rate), "
        "on the same 2 cores as the server and the load generator.") % (
    hr["p50"] - dr["p50"], hr["p99"] - dr["p99"], rate, cpu_us(h32), cpu_us(hr))
section = ("## Load balancer: one replica through HAProxy vs direct\n\n"
           "Same server, one run, alternating (two rounds each, averaged); HAProxy with the configuration "
           "`make stack` uses (stack/haproxy.cfg, one server, access log on).\n\n" + "\n".join(table) + "\n\n" + cost + "\n")
res.write_section("65-lb", section)
print(section)
PY
