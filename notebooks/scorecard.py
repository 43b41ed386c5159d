"""A scorecard learned from data: monotone bands per characteristic and an additive logit.

Used by train.ipynb (model families ``scorecard`` and ``scorecard_optbinning``) and its tests.

* ``characteristics(X, features)`` turns the raw float32 ``features`` matrix into the four
  characteristics (loan_to_income = loan_amount / income, divided in float32 exactly as the
  ONNX graph does, so band assignment is bit-identical).
* ``learn_edges_joint`` finds band edges jointly for all characteristics: a logistic regression
  on step ("thermometer") indicators at candidate edges, with non-negative steps (the monotone
  constraint) and an L1 penalty that keeps few steps; clusters of steps are merged into one edge,
  steps that stay small are dropped, and each edge is moved to the roundest number between the two
  training values around it. ``learn_edges_optbinning`` is the univariate alternative
  (optbinning's OptimalBinning with a monotonic trend per characteristic).
* ``fit_scorecard`` fits the additive logit on the bands (monotone by construction: non-negative
  steps), then merges spurious bands (too few training rows, or a step smaller than
  ``min_step``) and refits until none is left.
* ``to_onnx`` writes the graph by hand with onnx.helper: input ``features`` [N, 4] float32, outputs
  ``label``, ``probability`` and one ``contrib_<characteristic>`` per characteristic.
* ``reasons_table`` writes reasons.json (the Model directory contract of the team playbook).
* Evaluation helpers: the EDA's rule (``rule_points``), fresh rule-labelled applicants,
  accuracy at the band edges and monotonicity sweeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit

#: name, input field a reason names, how the value is computed, format, monotone direction, code
CHARACTERISTICS = [
    {"name": "income", "field": "income", "value": {"field": "income"}, "value_format": "currency",
     "direction": "increasing", "code": "INC"},
    {"name": "credit_score", "field": "credit_score", "value": {"field": "credit_score"},
     "value_format": "integer", "direction": "increasing", "code": "CRS"},
    {"name": "years_employed", "field": "years_employed", "value": {"field": "years_employed"},
     "value_format": "years", "direction": "increasing", "code": "YRS"},
    {"name": "loan_to_income", "field": "loan_amount", "value": {"ratio": ["loan_amount", "income"]},
     "value_format": "percent", "direction": "decreasing", "code": "LTI"},
]
NAMES = [c["name"] for c in CHARACTERISTICS]
SIGN = {c["name"]: (1.0 if c["direction"] == "increasing" else -1.0) for c in CHARACTERISTICS}
INPUT_FIELDS = ["income", "credit_score", "loan_amount", "years_employed"]

#: The bands eda.ipynb established (for fresh applicants and the band-edge accuracy only; the
#: scorecard never sees them).
EDA_EDGES = {"income": [50_000, 75_000, 100_000], "credit_score": [580, 670, 740, 800],
             "years_employed": [2, 5, 10], "loan_to_income": [0.10, 0.25, 0.40]}
#: Ranges of the training data (uniform in the Kaggle file), for fresh applicants.
RANGES = {"income": (30_000, 150_000), "credit_score": (300, 850), "loan_amount": (1_000, 50_000),
          "years_employed": (0, 40)}


def characteristics(X: np.ndarray, features: list[str]) -> dict[str, np.ndarray]:
    """float32 characteristic columns from the raw float32 features matrix."""
    X = np.asarray(X, dtype=np.float32)
    col = {f: X[:, i] for i, f in enumerate(features)}
    missing = [f for f in INPUT_FIELDS if f not in col]
    if missing:
        raise ValueError(f"the scorecard needs the input fields {missing} (features are {features})")
    with np.errstate(divide="ignore", invalid="ignore"):
        lti = (col["loan_amount"] / col["income"]).astype(np.float32)
    return {"income": col["income"], "credit_score": col["credit_score"],
            "years_employed": col["years_employed"], "loan_to_income": lti}


# --------------------------------------------------------------------------------------------
# The model


@dataclass
class Scorecard:
    """edges[name]: ascending float32 interior cut points; band b is [edges[b-1], edges[b]).
    contributions[name]: one log-odds contribution per band (len(edges) + 1)."""

    features: list[str]
    edges: dict[str, np.ndarray]
    contributions: dict[str, np.ndarray]
    intercept: float
    threshold: float = 0.5
    train_share: dict[str, np.ndarray] = field(default_factory=dict)

    def bands(self, X) -> dict[str, np.ndarray]:
        ch = characteristics(X, self.features)
        # number of edges <= x: the same as summing (x >= edge) in the graph
        return {n: np.searchsorted(self.edges[n], ch[n], side="right") for n in NAMES}

    def contrib(self, X) -> dict[str, np.ndarray]:
        return {n: self.contributions[n][b] for n, b in self.bands(X).items()}

    def decision_function(self, X) -> np.ndarray:
        return self.intercept + sum(self.contrib(X).values())

    def predict_proba(self, X) -> np.ndarray:
        p = expit(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= self.threshold).astype(np.int64)


def _design(ch: dict[str, np.ndarray], edges: dict[str, np.ndarray]):
    """Thermometer columns sign * (x >= edge) for every characteristic and edge."""
    cols, owner = [], []
    for n in NAMES:
        e = np.asarray(edges[n], dtype=np.float32)
        if len(e):
            cols.append((ch[n][:, None] >= e[None, :]).astype(np.float64) * SIGN[n])
            owner += [(n, k) for k in range(len(e))]
    A = np.hstack(cols) if cols else np.zeros((len(ch[NAMES[0]]), 0))
    return A, owner


def _fit_steps(A, y, l1=0.0, l2=1.0, sample_weight=None):
    """min logloss + l1*sum(w) + l2/2*|w|^2 over w >= 0 (free intercept). Returns (b, w)."""
    n, p = A.shape
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)

    def f(v):
        z = v[0] + A @ v[1:]
        loss = np.sum(sw * (np.logaddexp(0, z) - y * z))
        g = sw * (expit(z) - y)
        w = v[1:]
        return (loss + l1 * w.sum() + 0.5 * l2 * w @ w,
                np.concatenate([[g.sum()], A.T @ g + l1 + l2 * w]))

    res = minimize(f, np.zeros(p + 1), jac=True, method="L-BFGS-B",
                   bounds=[(None, None)] + [(0, None)] * p, options={"maxiter": 3000})
    return float(res.x[0]), res.x[1:]


def _roundest(lo: float, hi: float, integer: bool) -> float:
    """The number in (lo, hi] with the fewest significant digits (the simplest edge the data allows)."""
    if hi <= lo:
        return hi
    span = max(abs(hi), abs(lo), 1e-12)
    for k in range(int(math.floor(math.log10(span))) + 1, -12, -1):
        for m in (10, 5, 2.5, 2, 1):
            step = m * 10.0 ** (k - 1)
            if integer and (step < 1 or step != int(step)):
                continue
            v = math.floor(lo / step + 1) * step
            v = round(v, 12)
            if lo < v <= hi and np.float32(v) > np.float32(lo) and np.float32(v) <= np.float32(hi):
                return v
    return hi


def round_edges(ch, edges):
    """Move every edge to the roundest number between the training values just below and above it
    (the bands of the training rows do not change)."""
    out = {}
    for n in NAMES:
        x = np.unique(ch[n][np.isfinite(ch[n])])
        integer = bool(np.all(x == np.round(x))) and n != "loan_to_income"
        new = []
        for e in edges[n]:
            below = x[x < e]
            above = x[x >= e]
            if not len(below) or not len(above):
                new.append(float(e))
                continue
            new.append(_roundest(float(below[-1]), float(above[0]), integer))
        out[n] = np.unique(np.asarray(new, dtype=np.float32))
    return out


def learn_edges_joint(ch, y, n_candidates=100, l1=1.0, min_step=0.5, window_share=0.02, penalty=4.0,
                      log=print):
    """Band edges for all characteristics at once (see the module docstring)."""
    cand = {}
    for n in NAMES:
        x = np.sort(ch[n])
        u = np.unique(x)
        mids = ((u[:-1].astype(np.float64) + u[1:]) / 2)
        if len(mids) > n_candidates:
            q = np.quantile(x, np.linspace(0, 1, n_candidates + 2)[1:-1])
            mids = np.unique(mids[np.clip(np.searchsorted(mids, q), 0, len(mids) - 1)])
        cand[n] = mids.astype(np.float32)
    A, owner = _design(ch, cand)
    _, w = _fit_steps(A, y, l1=l1, l2=1e-3)
    edges = {}
    for n in NAMES:
        idx = [i for i, (m, _) in enumerate(owner) if m == n]
        steps, locs = w[idx], cand[n]
        x = np.sort(ch[n])
        # cluster steps that lie within window_share of the training rows of each other
        rank = np.searchsorted(x, locs)
        clusters, cur = [], []
        for s, loc, r in zip(steps, locs, rank):
            if s <= 1e-3:
                continue
            if cur and r - cur[-1][2] > window_share * len(x):
                clusters.append(cur)
                cur = []
            cur.append((s, loc, r))
        if cur:
            clusters.append(cur)
        kept = []
        for c in clusters:
            total = sum(s for s, _, _ in c)
            if total >= min_step:
                kept.append(max(c)[1])  # the location of the largest step of the cluster
        edges[n] = np.asarray(sorted(kept), dtype=np.float32)
    edges = refine_edges(ch, y, edges)
    edges = prune_edges(ch, y, edges, penalty=penalty, log=log)
    return refine_edges(ch, y, edges, passes=1)


def _loss(ch, y, edges, l2=1.0):
    A, _ = _design(ch, edges)
    b, w = _fit_steps(A, y, l2=l2)
    z = b + A @ w
    return float(np.sum(np.logaddexp(0, z) - y * z))


def prune_edges(ch, y, edges, penalty=4.0, log=print):
    """Backward elimination: drop the edge whose removal costs least while the deviance it buys
    is below ``penalty`` (4 per edge: between AIC's 2 and BIC's log(n) = 7.3 at n = 1,500; chosen
    on fresh applicants, see train.ipynb)."""
    edges = {n: np.asarray(e, dtype=np.float32).copy() for n, e in edges.items()}
    while True:
        full = _loss(ch, y, edges)
        best = None
        for n in NAMES:
            for k in range(len(edges[n])):
                trial = {**edges, n: np.delete(edges[n], k)}
                d = 2 * (_loss(ch, y, trial) - full)
                if best is None or d < best[0]:
                    best = (d, n, k)
        if best is None or best[0] >= penalty:
            return edges
        d, n, k = best
        log(f"prune: {n} edge {float(edges[n][k]):g} buys deviance {d:.2f} < {penalty:.2f}; merged")
        edges[n] = np.delete(edges[n], k)


def refine_edges(ch, y, edges, l2=1.0, tol=0.5, passes=2):
    """Place each edge where the training fit is best, given the others (one pass per edge, twice).

    The fit is flat between training values, and often across several of them (no training row
    there is decided by that edge). Among the placements within ``tol`` log-loss of the best one,
    the contiguous run around the best is a range of equally good edges; the edge becomes the
    roundest number in it (bank policies use round numbers; the training rows cannot tell)."""
    edges = {n: np.asarray(e, dtype=np.float32).copy() for n, e in edges.items()}
    for _ in range(passes):
        for n in NAMES:
            u = np.unique(ch[n])
            mids = ((u[:-1].astype(np.float64) + u[1:]) / 2).astype(np.float32)
            A, owner = _design(ch, edges)
            b, w = _fit_steps(A, y, l2=l2)
            z_all = b + A @ w
            for k in range(len(edges[n])):
                j = owner.index((n, k))
                base = z_all - A[:, j] * w[j]
                lo = edges[n][k - 1] if k else -np.inf
                hi = edges[n][k + 1] if k + 1 < len(edges[n]) else np.inf
                sel = np.flatnonzero((mids > lo) & (mids < hi))
                if not len(sel):
                    continue
                Z = base[:, None] + SIGN[n] * w[j] * (ch[n][:, None] >= mids[sel][None, :])
                loss = np.sum(np.logaddexp(0, Z) - y[:, None] * Z, axis=0)
                i = int(np.argmin(loss))
                ok = loss <= loss[i] + tol
                i0, i1 = i, i
                while i0 > 0 and ok[i0 - 1]:
                    i0 -= 1
                while i1 + 1 < len(sel) and ok[i1 + 1]:
                    i1 += 1
                integer = n != "loan_to_income" and bool(np.all(u == np.round(u)))
                edges[n][k] = np.float32(_roundest(float(u[sel[i0]]), float(u[sel[i1] + 1]), integer))
                z_all = base + SIGN[n] * w[j] * (ch[n] >= edges[n][k])
            edges[n] = np.unique(edges[n])
    return edges


def learn_edges_optbinning(ch, y, min_bin_size=0.05):
    from optbinning import OptimalBinning

    edges = {}
    for n in NAMES:
        ob = OptimalBinning(name=n, dtype="numerical", solver="cp", min_bin_size=min_bin_size,
                            monotonic_trend="ascending" if SIGN[n] > 0 else "descending")
        ob.fit(ch[n].astype(np.float64), y)
        edges[n] = np.asarray(ob.splits, dtype=np.float32)
    return round_edges(ch, edges)


def fit_scorecard(X, y, features, edges, C=1.0, min_band_share=0.02, min_step=0.05, log=print):
    """Additive logit on the bands; merges spurious bands and refits until none is left."""
    ch = characteristics(X, features)
    y = np.asarray(y, dtype=np.float64)
    edges = {n: np.asarray(e, dtype=np.float32).copy() for n, e in edges.items()}
    while True:
        # 1. bands holding too few training rows: drop the edge on their smaller side
        merged = False
        for n in NAMES:
            e = edges[n]
            if not len(e):
                continue
            counts = np.bincount(np.searchsorted(e, ch[n], side="right"), minlength=len(e) + 1)
            small = np.flatnonzero(counts < min_band_share * len(y))
            if len(small):
                b = int(small[np.argmin(counts[small])])
                k = 0 if b == 0 else (len(e) - 1 if b == len(e) else (b - 1 if counts[b - 1] <= counts[b + 1] else b))
                log(f"merge: {n} band {b} holds {counts[b]} training rows (< {min_band_share:.0%}); drop edge {e[k]:g}")
                edges[n] = np.delete(e, k)
                merged = True
                break
        if merged:
            continue
        A, owner = _design(ch, edges)
        b0, w = _fit_steps(A, y, l2=1.0 / C)
        # 2. steps too small to matter: merge the two bands (drop the smallest such edge)
        if len(w) and w.min() < min_step:
            j = int(np.argmin(w))
            n, k = owner[j]
            log(f"merge: {n} step at {edges[n][k]:g} is {w[j]:.4f} log-odds (< {min_step}); drop it")
            edges[n] = np.delete(edges[n], k)
            continue
        break
    contributions = {}
    for n in NAMES:
        steps = np.array([w[j] for j, (m, _) in enumerate(owner) if m == n])
        c = SIGN[n] * np.concatenate([[0.0], np.cumsum(steps)])
        contributions[n] = c
    share = {n: np.bincount(np.searchsorted(edges[n], ch[n], side="right"),
                            minlength=len(edges[n]) + 1) / len(y) for n in NAMES}
    return Scorecard(list(features), edges, contributions, b0, train_share=share)


# --------------------------------------------------------------------------------------------
# ONNX


def to_onnx(model: Scorecard, name="loan_approval_scorecard"):
    """The graph, in few nodes (single-row latency is per node): divide the features by income and
    keep the quotient only in the loan_amount column (= loan_to_income); gather the characteristic of
    every edge of every characteristic at once, compare with all edges (x >= edge), and one Gemm with
    the steps gives the four contributions (base + steps) and the logit (intercept + their sum);
    Sigmoid, and probability >= threshold is the label."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(nm, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    idx = {f: i for i, f in enumerate(model.features)}
    F = len(model.features)
    source = {"income": idx["income"], "credit_score": idx["credit_score"],
              "years_employed": idx["years_employed"], "loan_to_income": idx["loan_amount"]}
    is_ratio = np.zeros(F, bool)
    is_ratio[idx["loan_amount"]] = True
    nodes += [
        helper.make_node("Gather", ["features", const("income_column", np.array([idx["income"]], np.int64))],
                         ["income"], axis=1, name="income"),
        helper.make_node("Div", ["features", "income"], ["per_income"], name="per_income"),
        # the loan_amount column becomes loan_to_income; the other columns stay as they are
        helper.make_node("Where", [const("is_ratio", is_ratio), "per_income", "features"], ["characteristics"],
                         name="loan_to_income"),
    ]
    if not sum(len(model.edges[n]) for n in NAMES):
        raise ValueError("the scorecard has no band edges")
    cols, edges, W, base = [], [], [], []
    for j, n in enumerate(NAMES):
        e = np.asarray(model.edges[n], np.float32)
        c = np.asarray(model.contributions[n], np.float64)
        for k, step in enumerate(np.diff(c)):
            cols.append(source[n])
            edges.append(e[k])
            row = np.zeros(len(NAMES) + 1)
            row[j] = row[-1] = step  # its characteristic's column, and the logit's
            W.append(row)
        base.append(c[0])
    base.append(model.intercept + sum(base))
    nodes += [
        helper.make_node("Gather", ["characteristics", const("edge_columns", np.array(cols, np.int64))],
                         ["per_edge"], axis=1, name="per_edge"),
        helper.make_node("GreaterOrEqual", ["per_edge", const("edges", np.array(edges, np.float32))], ["above"],
                         name="above_edge"),
        helper.make_node("Cast", ["above"], ["above_f"], to=TensorProto.FLOAT, name="above_float"),
        # [N, K] x [K, 5] + base: the four contributions and the logit
        helper.make_node("Gemm", ["above_f", const("steps", np.array(W, np.float32).reshape(len(edges), -1)),
                                  const("base", np.array(base, np.float32))], ["scores"], name="scores"),
    ]
    outs = []
    for j, n in enumerate(NAMES + ["logit"]):
        out = "logit" if n == "logit" else f"contrib_{n}"
        nodes.append(helper.make_node("Gather", ["scores", const(f"column_{n}", np.array(j, np.int64))], [out],
                                      axis=1, name=out))
        outs.append(out)
    nodes += [
        helper.make_node("Sigmoid", ["logit"], ["probability"], name="probability"),
        helper.make_node("GreaterOrEqual", ["probability", const("threshold", np.array(model.threshold, np.float32))],
                         ["approve"], name="decide"),
        helper.make_node("Cast", ["approve"], ["label"], to=TensorProto.INT64, name="label"),
    ]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, F])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None])]
        + [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None]) for o in outs[:-1]], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ml-service-scorecard")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


# --------------------------------------------------------------------------------------------
# reasons.json

# A band is [lower, upper): the graph's x >= edge puts a value exactly on an edge in the band above
# it. So an increasing characteristic's text names its band's upper edge, which the applicant is
# below (exclusive: "below"), and a decreasing one's names its lower edge, which the applicant is
# at or above (inclusive: "or more", never "more than": at exactly 40% "more than 40%" is untrue).
LABELS = {
    "income": ("Income below {edge}", "currency"),
    "credit_score": ("Credit score below {edge}", "integer"),
    "years_employed": ("Employed less than {edge}", "years"),
    "loan_to_income": ("Loan is {edge} of income or more", "percent"),
}


def format_value(v: float, fmt: str) -> str:
    """A band's edge in the bank's words of its reason text (two decimals at most: "18.66%").
    An applicant's value in that text is applicant_value's, as the server writes it."""
    if fmt == "currency":
        return f"${v:,.0f}"
    if fmt == "percent":
        s = f"{v * 100:.2f}".rstrip("0").rstrip(".")
        return f"{s}%"
    if fmt == "years":
        s = f"{v:.2f}".rstrip("0").rstrip(".")
        return f"{s} year" + ("" if s == "1" else "s")
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _round_half_away(x: float) -> float:
    """Go's math.Round (Python's round() rounds half to even)."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _one_decimal(v: float) -> str:
    n = int(_round_half_away(v * 10))
    sign, n = ("-", -n) if n < 0 else ("", n)
    return sign + str(n // 10) + (f".{n % 10}" if n % 10 else "")


MAX_PERCENT = 1_000_000  # past this a percentage is "over 1000000%", as the server writes it


def applicant_value(v: float, fmt: str, band: dict) -> str:
    """An applicant's value in a reason text, as the server writes it (serve/reasons AppendValue and
    shown): rounded to the format's precision (whole dollars and units, one decimal of a percent
    or a year) but never across an edge of the band the value is in, so an income of $49,999.70
    in "below $50,000" is "$49,999"."""
    def displayed(x, rnd):
        if fmt == "percent":
            return rnd(x * 100 * 10) / 1000
        if fmt == "years":
            return rnd(x * 10) / 10
        return rnd(x)
    if math.isfinite(v):
        r = displayed(v, _round_half_away)
        if band.get("upper") is not None and v < band["upper"] <= r:
            v = displayed(v, math.floor)
        elif band.get("lower") is not None and r < band["lower"] <= v:
            v = displayed(v, math.ceil)
    if not math.isfinite(v):
        return "n/a"
    if fmt == "currency":
        return ("-" if v < 0 else "") + "$" + f"{int(_round_half_away(abs(v))):,}"
    if fmt == "percent":
        pct = v * 100
        if pct >= MAX_PERCENT:
            return f"over {MAX_PERCENT}%"
        if pct <= -MAX_PERCENT:
            return f"under -{MAX_PERCENT}%"
        return _one_decimal(pct) + "%"
    if fmt == "years":
        s = _one_decimal(v)
        return s + (" year" if s == "1" else " years")
    n = int(_round_half_away(v))
    return f"{n:,}"


def band_text(name: str, direction: str, lower: float | None, upper: float | None) -> str:
    """The reason text of a band [lower, upper) of a characteristic that is not its best band:
    the edge the applicant is short of, in the bank's words (LABELS), with {value} for theirs."""
    template, fmt = LABELS[name]
    edge = upper if direction == "increasing" else lower
    return template.format(edge=format_value(edge, fmt)) + " (yours {value})"


def reasons_table(model: Scorecard) -> dict:
    chars = []
    for spec in CHARACTERISTICS:
        n = spec["name"]
        e = [float(str(np.float32(v))) for v in model.edges[n]]  # 0.1, not 0.10000000149011612
        c = model.contributions[n]
        best = int(np.argmax(c))
        bands = []
        for b in range(len(e) + 1):
            lower = e[b - 1] if b else None
            upper = e[b] if b < len(e) else None
            text = None if b == best else band_text(n, spec["direction"], lower, upper)
            bands.append({"lower": lower, "upper": upper, "contribution": float(np.float32(c[b])) + 0.0, "text": text})
        chars.append({**{k: spec[k] for k in ("name", "field", "value", "value_format", "direction", "code")},
                      "bands": bands})
    table = {"format_version": 1, "threshold": model.threshold, "characteristics": chars}
    check_reasons_table(table, model.intercept)
    return table


def check_reasons_table(table: dict, intercept: float) -> None:
    """The export gate: every characteristic covered, bands ordered and distinguishable, the best
    bands approve."""
    names = [c["name"] for c in table["characteristics"]]
    missing = [n for n in NAMES if n not in names]
    if missing or len(names) != len(set(names)):
        raise ValueError(f"reasons table does not cover every characteristic: missing {missing}, has {names}")
    for c in table["characteristics"]:
        bands = c["bands"]
        if not bands or bands[0]["lower"] is not None or bands[-1]["upper"] is not None:
            raise ValueError(f"{c['name']}: bands must start and end open")
        for a, b in zip(bands, bands[1:]):
            if a["upper"] != b["lower"]:
                raise ValueError(f"{c['name']}: bands are not contiguous at {a['upper']}")
        contrib = np.array([b["contribution"] for b in bands])
        if len(contrib) > 1 and np.min(np.abs(contrib[:, None] - contrib[None, :])
                                       + np.eye(len(contrib)) * 1e9) < 1e-3:
            raise ValueError(f"{c['name']}: two bands' contributions differ by less than 1e-3")
        sign = 1 if c["direction"] == "increasing" else -1
        if np.any(sign * np.diff(contrib) < 0):
            raise ValueError(f"{c['name']}: contributions are not {c['direction']}")
        best = int(np.argmax(contrib))
        for i, b in enumerate(bands):
            if i != best and (not b["text"] or "{value}" not in b["text"]):
                raise ValueError(f"{c['name']}: band {i} has no reason text with {{value}}")
    best_logit = intercept + sum(max(b["contribution"] for b in c["bands"])
                                                    for c in table["characteristics"])
    if expit(best_logit) < table["threshold"]:
        raise ValueError("an applicant in every best band would be declined")


def reasons_for(table: dict, row: dict, contributions: dict) -> list[dict]:
    """The playbook's rule, in Python (the server does the same in Go): loss against the best band,
    the applicant's value worded as the server words it."""
    out = []
    for c in table["characteristics"]:
        bands = c["bands"]
        contrib = np.array([b["contribution"] for b in bands])
        # the band nearest the output, as the server has it: a float32 output is an ulp or two off
        # its band's contribution, so "loss > 0" would make a best band a reason (with no text)
        b = int(np.argmin(np.abs(contrib - contributions[c["name"]])))
        loss = contrib.max() - contributions[c["name"]]
        if b != int(np.argmax(contrib)):
            v = c["value"]
            value = row[v["field"]] if "field" in v else row[v["ratio"][0]] / row[v["ratio"][1]]
            out.append((loss, {"code": c["code"], "feature": c["field"],
                               "text": bands[b]["text"].replace("{value}", applicant_value(value, c["value_format"], bands[b]))}))
    out.sort(key=lambda t: -t[0])
    return [r for _, r in out[:4]]


# --------------------------------------------------------------------------------------------
# The EDA's rule, fresh applicants and the evaluation


def rule_points(frame: pd.DataFrame) -> np.ndarray:
    cs, inc, yrs = frame["credit_score"], frame["income"], frame["years_employed"]
    ratio = frame["loan_amount"] / inc
    return (25 + 15 * (cs >= 580) + 10 * (cs >= 670) + 10 * (cs >= 740) + 5 * (cs >= 800)
            + 10 * (inc >= 50_000) + 5 * (inc >= 75_000) + 5 * (inc >= 100_000)
            + 5 * (yrs >= 2) + 5 * (yrs >= 5) + 5 * (yrs >= 10)
            - 5 * (ratio >= 0.10) - 5 * (ratio >= 0.25) - 5 * (ratio >= 0.40)).to_numpy(float)


def fresh_applicants(n: int, seed: int) -> pd.DataFrame:
    """n applicants drawn uniformly over the training ranges (integers), labelled by the EDA's rule."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f: rng.integers(lo, hi + 1, n) for f, (lo, hi) in RANGES.items()})
    df["points"] = rule_points(df)
    df["loan_approved"] = df["points"] >= 60
    return df


def edge_applicants(n: int, seed: int) -> pd.DataFrame:
    """n applicants with at least one characteristic right at an EDA band edge (within 1 credit
    point, 1 year, 1 % of income, 0.5 points of loan-to-income), labelled by the rule."""
    rng = np.random.default_rng(seed)
    df = fresh_applicants(n, seed)
    which = rng.integers(0, 4, n)
    for i, name in enumerate(NAMES):
        sel = which == i
        k = int(sel.sum())
        e = np.array(EDA_EDGES[name], float)[rng.integers(0, len(EDA_EDGES[name]), k)]
        if name == "credit_score":
            df.loc[sel, "credit_score"] = (e + rng.integers(-1, 1, k)).astype(int)
        elif name == "years_employed":
            df.loc[sel, "years_employed"] = (e + rng.integers(-1, 1, k)).astype(int)
        elif name == "income":
            df.loc[sel, "income"] = np.round(e * (1 + rng.uniform(-0.01, 0.01, k))).astype(int)
        else:
            inc = df.loc[sel, "income"].to_numpy(float)
            df.loc[sel, "loan_amount"] = np.clip(np.round(inc * (e + rng.uniform(-0.005, 0.005, k))), 1, None).astype(int)
    df["points"] = rule_points(df)
    df["loan_approved"] = df["points"] >= 60
    return df


def monotonicity_violations(predict_proba, features, base: pd.DataFrame, n_grid=41, tol=1e-9):
    """For each input field sweep it over its range for every applicant in base (the other fields
    fixed). A violation is an applicant whose P(approve) drops where the policy says it must not
    (income, credit score, years up; loan amount down means up). Returns {field: applicants}."""
    out = {}
    for f, (lo, hi) in RANGES.items():
        grid = np.linspace(lo, hi, n_grid)
        rows = np.repeat(base[features].to_numpy(np.float32), n_grid, axis=0)
        rows[:, features.index(f)] = np.tile(grid, len(base))
        p = predict_proba(rows).reshape(len(base), n_grid)
        d = np.diff(p, axis=1)
        if f == "loan_amount":
            d = -d
        out[f] = int(np.sum(np.any(d < -tol, axis=1)))
    return out
