#!/usr/bin/env bash
# bench stage: the decision record's cost — the record off, on with SQLite and
# on with PostgreSQL, each on its own server (bench/record.sh, issue 15; needs
# `make record-test-deps`, which `make bench` runs). Needs no shared server.
# Run by bench/run.sh with the environment bench/lib.sh describes.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
trap stop_started EXIT

say "decision record: off, SQLite, PostgreSQL"
bash "$ROOT/bench/record.sh" "$RES"
{
	echo "## Decision record cost"
	echo
	echo "Three servers on the shipped artifacts, the same binary: the record off (\`SERVE_DECISIONS_URL=off\`), on with SQLite (the default) and on with PostgreSQL (a throwaway local cluster); \`/v1/predict\` at 32 connections, at a fixed $RATE req/s, and batch rows/s, $DURATION each (\`bench/record.sh\`)."
	echo
	cat "$RES/record.md"
} >"$RES/sections/40-record.md"
