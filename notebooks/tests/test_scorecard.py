"""scorecard.py: the hand-written ONNX graph against the Python model, the reasons table's export
gate, the reasons rule and the edge rounding (no training: a hand-made scorecard, fast)."""

from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

import scorecard

FEATURES = ["income", "credit_score", "loan_amount", "years_employed"]


def hand_made() -> scorecard.Scorecard:
    edges = {"income": [50_000, 75_000, 100_000], "credit_score": [580, 670, 740, 800],
             "years_employed": [2, 5, 10], "loan_to_income": [0.10, 0.25, 0.40]}
    contrib = {"income": [0, 2, 3, 4], "credit_score": [0, 3, 5, 7, 8], "years_employed": [0, 1, 2, 3],
               "loan_to_income": [0, -1, -2, -3]}
    return scorecard.Scorecard(
        FEATURES, {k: np.asarray(v, np.float32) for k, v in edges.items()},
        {k: np.asarray(v, float) * 0.97 for k, v in contrib.items()}, intercept=-8.0)


def session(model):
    return ort.InferenceSession(scorecard.to_onnx(model).SerializeToString(), providers=["CPUExecutionProvider"])


def test_graph_matches_python_model_including_rows_on_every_edge():
    model = hand_made()
    fresh = scorecard.fresh_applicants(20_000, 7)
    X = fresh[FEATURES].to_numpy(np.float32)
    # rows exactly on each edge and one below it, and loan-to-income exactly on its edges
    on_edges = []
    for e in (50_000, 75_000, 100_000):
        on_edges += [[e, 700, 1000, 5], [e - 1, 700, 1000, 5]]
    for e in (580, 670, 740, 800):
        on_edges += [[60_000, e, 1000, 5], [60_000, e - 1, 1000, 5]]
    for e in (2, 5, 10):
        on_edges += [[60_000, 700, 1000, e], [60_000, 700, 1000, e - 1]]
    for e in (0.10, 0.25, 0.40):
        on_edges += [[80_000, 700, 80_000 * e, 5], [80_000, 700, 80_000 * e - 1, 5]]
    X = np.vstack([X, np.asarray(on_edges, np.float32)])
    outs = session(model).run(None, {"features": X})
    names = [o.name for o in session(model).get_outputs()]
    assert names == ["label", "probability"] + [f"contrib_{n}" for n in scorecard.NAMES]
    assert np.array_equal(outs[0], model.predict(X))
    assert np.max(np.abs(outs[1] - model.predict_proba(X)[:, 1])) <= 1e-6
    ref = model.contrib(X)
    for n, o in zip(scorecard.NAMES, outs[2:]):
        assert np.max(np.abs(o - ref[n])) <= 1e-6, n
    # probability = sigmoid(intercept + sum of contributions)
    logit = model.intercept + sum(o.astype(np.float64) for o in outs[2:])
    assert np.max(np.abs(1 / (1 + np.exp(-logit)) - outs[1])) <= 1e-6
    # an edge is inclusive: 670 is in the 670-740 band
    b = model.bands(np.asarray([[60_000, 670, 1000, 5], [60_000, 669, 1000, 5]], np.float32))
    assert b["credit_score"].tolist() == [2, 1]


def test_column_order_follows_features():
    model = hand_made()
    order = ["years_employed", "loan_amount", "income", "credit_score"]
    shuffled = copy.deepcopy(model)
    shuffled.features = order
    X = scorecard.fresh_applicants(500, 3)[FEATURES].to_numpy(np.float32)
    Xs = X[:, [FEATURES.index(f) for f in order]]
    assert np.allclose(session(shuffled).run(["probability"], {"features": Xs})[0],
                       session(model).run(["probability"], {"features": X})[0], atol=1e-7)


def test_reasons_table_wording_and_reasons():
    model = hand_made()
    table = scorecard.reasons_table(model)
    crs = next(c for c in table["characteristics"] if c["name"] == "credit_score")
    assert crs["bands"][1] == {"lower": 580.0, "upper": 670.0, "contribution": pytest.approx(3 * 0.97),
                               "text": "Credit score below 670 (yours {value})"}
    assert crs["bands"][-1]["text"] is None
    lti = next(c for c in table["characteristics"] if c["name"] == "loan_to_income")
    assert lti["bands"][2]["text"] == "Loan is 25% of income or more (yours {value})"
    assert lti["value"] == {"ratio": ["loan_amount", "income"]} and lti["field"] == "loan_amount"
    app = {"income": 50_000, "credit_score": 658, "loan_amount": 13_000, "years_employed": 12}
    X = np.asarray([[app[f] for f in FEATURES]], np.float32)
    contrib = {n: float(v[0]) for n, v in model.contrib(X).items()}
    assert model.predict(X)[0] == 0
    reasons = scorecard.reasons_for(table, app, contrib)
    assert [r["text"] for r in reasons] == ["Credit score below 670 (yours 658)",
                                            "Income below $75,000 (yours $50,000)",
                                            "Loan is 25% of income or more (yours 26%)"]
    assert [r["code"] for r in reasons] == ["CRS", "INC", "LTI"]


def test_reason_texts_are_true_exactly_at_an_edge():
    """A value exactly on an edge is in the band above it (x >= edge in the graph): its text must
    hold there ("25% or more", not "more than 25%"), and so must the band below's just under it."""
    model = hand_made()
    table = scorecard.reasons_table(model)
    lti = next(c for c in table["characteristics"] if c["name"] == "loan_to_income")
    at_edge = {"income": 40_000, "credit_score": 700, "loan_amount": 10_000, "years_employed": 12}  # LTI = 25%
    X = np.asarray([[at_edge[f] for f in FEATURES]], np.float32)
    assert model.bands(X)["loan_to_income"][0] == 2 and lti["bands"][2]["lower"] == 0.25
    contrib = {n: float(v[0]) for n, v in model.contrib(X).items()}
    texts = {r["code"]: r["text"] for r in scorecard.reasons_for(table, at_edge, contrib)}
    assert texts["LTI"] == "Loan is 25% of income or more (yours 25%)"
    # Every band's wording against its own edges: a decreasing characteristic names the lower
    # edge (inclusive), an increasing one the upper edge (exclusive), never a strict "more than".
    for c in table["characteristics"]:
        for b in c["bands"]:
            if b["text"] is None:
                continue
            assert "more than" not in b["text"] and "above" not in b["text"]
            edge = b["upper"] if c["direction"] == "increasing" else b["lower"]
            assert scorecard.format_value(edge, c["value_format"]) in b["text"]



def test_applicant_values_are_worded_as_the_server_words_them():
    """The figures serve/reasons' TestFormatValue and its band-edge tests expect, so the notebook's
    reason review reads what an applicant is sent."""
    anywhere = {"lower": None, "upper": None}
    for v, fmt, want in [(612.6, "integer", "613"), (1234567, "integer", "1,234,567"),
                         (999.5, "currency", "$1,000"), (12, "currency", "$12"),
                         (0.27, "percent", "27%"), (0.275, "percent", "27.5%"), (2, "percent", "200%"),
                         (9999.99, "percent", "999999%"), (10000, "percent", "over 1000000%"),
                         (1, "years", "1 year"), (0, "years", "0 years"), (2.5, "years", "2.5 years"),
                         (float("inf"), "percent", "n/a")]:
        assert scorecard.applicant_value(v, fmt, anywhere) == want, (v, fmt)
    # Never rounded across the band's edge: "below $50,000 (yours $50,000)" would be false.
    assert scorecard.applicant_value(49_999.7, "currency", {"lower": None, "upper": 50_000.0}) == "$49,999"
    assert scorecard.applicant_value(0.2549, "percent", {"lower": 0.1, "upper": 0.255}) == "25.4%"
    assert scorecard.applicant_value(0.40001, "percent", {"lower": 0.4, "upper": None}) == "40%"
    assert scorecard.applicant_value(1.96, "years", {"lower": None, "upper": 2.0}) == "1.9 years"


def test_export_gate_rejects_bad_tables():
    model = hand_made()
    table = scorecard.reasons_table(model)
    missing = copy.deepcopy(table)
    missing["characteristics"] = missing["characteristics"][:-1]
    with pytest.raises(ValueError, match="does not cover every characteristic.*loan_to_income"):
        scorecard.check_reasons_table(missing, model.intercept)
    close = copy.deepcopy(table)
    close["characteristics"][0]["bands"][1]["contribution"] = close["characteristics"][0]["bands"][2]["contribution"] - 1e-4
    with pytest.raises(ValueError, match="differ by less than 1e-3"):
        scorecard.check_reasons_table(close, model.intercept)
    with pytest.raises(ValueError, match="every best band would be declined"):
        scorecard.check_reasons_table(table, -100.0)
    not_monotone = copy.deepcopy(model)
    not_monotone.contributions["income"] = np.array([0, 3, 2, 4.0])
    with pytest.raises(ValueError, match="not increasing"):
        scorecard.reasons_table(not_monotone)


def test_merge_of_spurious_bands_and_round_edges():
    rng = np.random.default_rng(0)
    fresh = scorecard.fresh_applicants(3000, 11)
    X = fresh[FEATURES].to_numpy(np.float32)
    y = fresh["loan_approved"].astype(int).to_numpy()
    edges = {n: np.asarray(e, np.float32) for n, e in scorecard.EDA_EDGES.items()}
    # a spurious edge holding 0.5 % of the rows is merged, and says so
    edges["credit_score"] = np.asarray([580, 582, 670, 740, 800], np.float32)
    log = []
    model = scorecard.fit_scorecard(X, y, FEATURES, edges, log=log.append)
    assert model.edges["credit_score"].tolist() == [580, 670, 740, 800]
    assert any("credit_score" in line and "582" in line for line in log), log
    assert scorecard._roundest(669, 671.5, integer=True) == 670
    assert scorecard._roundest(49_310, 50_420, integer=True) == 50_000
    assert scorecard._roundest(1, 3, integer=True) == 2
    assert scorecard._roundest(0.2497, 0.2503, integer=False) == 0.25
    del rng


def test_monotonicity_sweep_finds_a_violation():
    model = hand_made()
    base = scorecard.fresh_applicants(200, 5)
    ok = scorecard.monotonicity_violations(lambda r: model.predict_proba(r)[:, 1], FEATURES, base)
    assert ok == {"income": 0, "credit_score": 0, "loan_amount": 0, "years_employed": 0}
    bad = copy.deepcopy(model)
    bad.contributions["credit_score"] = np.array([0, 3, 2, 7, 8.0])
    v = scorecard.monotonicity_violations(lambda r: bad.predict_proba(r)[:, 1], FEATURES, base)
    assert v["credit_score"] > 0


def test_fresh_applicants_follow_the_rule_and_are_reproducible():
    a = scorecard.fresh_applicants(1000, 42)
    assert a.equals(scorecard.fresh_applicants(1000, 42))
    assert ((scorecard.rule_points(a) >= 60) == a["loan_approved"]).all()
    e = scorecard.edge_applicants(1000, 1)
    assert isinstance(e, pd.DataFrame) and ((scorecard.rule_points(e) >= 60) == e["loan_approved"]).all()


def test_best_band_is_no_reason_whatever_the_float_noise():
    """The graph's float32 Gemm sums the steps, so a best band's contrib_* output can sit an ulp
    (about 2e-6 at 20 log-odds) from the table's contribution: that is no loss, and no reason."""
    model = hand_made()
    model.contributions = {n: c * 2.625 + np.arange(len(c)) * 0.0137 * scorecard.SIGN[n]
                           for n, c in model.contributions.items()}
    model.intercept = -21.0
    table = scorecard.reasons_table(model)
    app = {"income": 200_000, "credit_score": 850, "loan_amount": 1_000, "years_employed": 39}
    X = np.asarray([[app[f] for f in FEATURES]], np.float32)
    outs = session(model).run([f"contrib_{n}" for n in scorecard.NAMES], {"features": X})
    contrib = {n: float(o[0]) for n, o in zip(scorecard.NAMES, outs)}
    best = {c["name"]: max(b["contribution"] for b in c["bands"]) for c in table["characteristics"]}
    assert max(best[n] - contrib[n] for n in scorecard.NAMES) > 1e-6  # the noise this test is about
    assert scorecard.reasons_for(table, app, contrib) == []
    # a row one band below its best still gets exactly that reason
    app["credit_score"] = 799
    X = np.asarray([[app[f] for f in FEATURES]], np.float32)
    outs = session(model).run([f"contrib_{n}" for n in scorecard.NAMES], {"features": X})
    contrib = {n: float(o[0]) for n, o in zip(scorecard.NAMES, outs)}
    assert [r["code"] for r in scorecard.reasons_for(table, app, contrib)] == ["CRS"]
