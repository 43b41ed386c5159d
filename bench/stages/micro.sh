#!/usr/bin/env bash
# bench stage: Go micro-benchmarks (decode + validate, feature mapping, ONNX runs at batch
# 1/64/1024, the whole handler in-process) and a CPU profile of /v1/predict on
# the in-process harness. Needs no server. BENCHTIME [2s], PROFILETIME [5s].
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

cd "$ROOT"
say "Go micro-benchmarks"
go test -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" -count 1 ./bench | tee "$RES/micro.txt" >&2

say "CPU profile of /v1/predict (in-process harness)"
go test -run '^$' -bench '^BenchmarkPredictHTTP$' -benchtime "$PROFILETIME" -count 1 \
	-cpuprofile "$WORK/cpu.prof" -o "$WORK/bench.test" ./bench >"$RES/profile-bench.txt"
go tool pprof -top -nodecount=30 "$WORK/bench.test" "$WORK/cpu.prof" >"$RES/profile-flat.txt" 2>/dev/null
go tool pprof -top -cum -nodecount=40 "$WORK/bench.test" "$WORK/cpu.prof" >"$RES/profile-cum.txt" 2>/dev/null
head -20 "$RES/profile-flat.txt" >&2
