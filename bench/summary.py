"""bench/summary.py: what the bench stages' small Python summaries share.

A stage (bench/stages/*.sh) runs its summary with `summarize ARGS <<'PY' … PY` (bench/lib.sh),
which puts bench/ on the path, so the summary starts with `from summary import …`. It reads the
load generator's results ($RES/NAME.json, written by `lg NAME …`) and writes rows of the targets
table ($RES/targets/STAGE.md) and report sections ($RES/sections/NN-STAGE.md), which bench/report
puts into BENCHMARKS.md as they are.

`python3 bench/summary.py line RESULT.json` prints the one-line summary `lg` shows of a run.
"""

from __future__ import annotations

import json
import os
import sys


class Results:
    """The results directory of one bench run ($RES)."""

    def __init__(self, res: str):
        self.res = res

    def load(self, name: str) -> dict:
        """One load-generator run: $RES/NAME.json."""
        with open(os.path.join(self.res, name + ".json")) as f:
            return json.load(f)

    def runs(self, prefix: str, n: int) -> list[dict]:
        """Runs PREFIX-1 … PREFIX-N (the rounds of alternating pairs)."""
        return [self.load(f"{prefix}-{i}") for i in range(1, n + 1)]

    def text(self, name: str) -> str:
        """Another file a stage wrote into $RES (e.g. NAME.ticks)."""
        with open(os.path.join(self.res, name)) as f:
            return f.read()

    def write_targets(self, stage: str, rows: list[str]) -> None:
        """The stage's rows of the targets table: $RES/targets/STAGE.md."""
        self._write(os.path.join("targets", stage + ".md"), "\n".join(rows) + "\n")

    def write_section(self, name: str, section: str) -> None:
        """A report section of its own: $RES/sections/NAME.md (NAME orders it: 60-record)."""
        self._write(os.path.join("sections", name + ".md"), section)

    def _write(self, rel: str, text: str) -> None:
        with open(os.path.join(self.res, rel), "w") as f:
            f.write(text)


def mean(runs: list[dict], key: str = "rps") -> float:
    """The mean of one figure over runs."""
    return sum(r[key] for r in runs) / len(runs)


def errors(*runs: dict) -> int:
    """Failed requests over all the runs given."""
    return sum(r["errors"] for r in runs)


def share(part: float, whole: float) -> float:
    """part / whole, 0 when whole is (a run that did nothing meets no target)."""
    return part / whole if whole else 0.0


def mark(ok: bool) -> str:
    """The targets table's verdict."""
    return "**met**" if ok else "**not met**"


def num(x: float) -> str:
    """A whole number with thousands separators: 12,345."""
    return format(round(x), ",")


def target(what: str, goal: str, reached: str, ok: bool) -> str:
    """One row of the targets table: what, the goal, what was reached, the verdict."""
    return f"| {what} | {goal} | {reached} | {mark(ok)} |"


def line(result: dict) -> str:
    """The one-line summary of a run that `lg` prints."""
    return "  %-22s %9.0f req/s  p50 %7.3f  p99 %8.3f ms  errors %d" % (
        result["label"], result["rps"], result["p50_ms"], result["p99_ms"], result["errors"])


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "line":
        sys.exit("usage: summary.py line RESULT.json")
    with open(sys.argv[2]) as f:
        print(line(json.load(f)))
