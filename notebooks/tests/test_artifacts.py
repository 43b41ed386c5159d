"""artifacts/loan-approval: the versions the Go server ships with."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

import loan_data
import pipeline
import scorecard
from test_notebooks import assert_pyfunc_predicts_dataframe, assert_reproduces

ROOT = Path(__file__).resolve().parents[2] / "artifacts" / "loan-approval"
REGISTRY = json.loads((ROOT / "registry.json").read_text())
VERSIONS = [v["version"] for v in REGISTRY["versions"]]


def test_registry_state():
    assert REGISTRY["name"] == "loan-approval"
    assert len(VERSIONS) >= 2
    assert REGISTRY["aliases"]["champion"] in VERSIONS
    families = {v["description"].split(";")[0] for v in REGISTRY["versions"]}
    assert {"logistic_regression", "random_forest", "scorecard", "scorecard_optbinning"} <= families
    dirs = sorted(p.name for p in (ROOT / "versions").iterdir())
    assert dirs == sorted(VERSIONS)
    champion = next(v for v in REGISTRY["versions"] if v["version"] == REGISTRY["aliases"]["champion"])
    assert champion["description"].startswith("scorecard;")
    assert pipeline.choose_champion(REGISTRY["versions"]) == champion["version"]
    m = champion["metrics"]
    # the targets, on applicants the project never saw
    assert m["fresh_accuracy"] >= 0.995 and m["edge_accuracy"] >= 0.99 and m["monotonicity_violations"] == 0
    # `points` is not an input of any shipped version, so it cannot move a probability
    assert all("points" not in v["features"] for v in REGISTRY["versions"])
    with_reasons = [v for v in VERSIONS if (ROOT / "versions" / v / "reasons.json").exists()]
    assert len(with_reasons) >= 2 and champion["version"] in with_reasons
    forest = [v for v in REGISTRY["versions"] if v["description"].startswith("random_forest;")]
    assert forest, "the old forest stays a version (make bench compares it with the champion)"


@pytest.mark.parametrize("version", VERSIONS)
def test_version_has_column_signature_and_reproduces_serving_check(version):
    entry = next(v for v in REGISTRY["versions"] if v["version"] == version)
    model_dir = ROOT / "versions" / version
    signature = mlflow.models.Model.load(str(model_dir / "MLmodel")).signature
    assert not signature.inputs.is_tensor_spec()
    assert signature.inputs.input_names() == entry["features"]
    assert {t.name for t in signature.inputs.input_types()} == {"float"}
    assert set(entry["features"]) <= set(loan_data.API_FIELDS)
    m = entry["metrics"]
    assert entry["description"].endswith(f"test accuracy {m['accuracy']:.4f}, ROC AUC {m['roc_auc']:.4f}")
    assert (model_dir / "model.onnx").stat().st_size < 5_000_000
    assert_reproduces(model_dir, entry["features"])
    assert_pyfunc_predicts_dataframe(model_dir)


@pytest.mark.parametrize("version", [v for v in VERSIONS if (ROOT / "versions" / v / "reasons.json").exists()])
def test_shipped_reason_texts_are_the_generators(version):
    """Each shipped reasons.json says what scorecard.reasons_table writes for its bands today (the
    wording is true exactly at an edge: "40% of income or more"; the model.onnx beside it is untouched)."""
    table = json.loads((ROOT / "versions" / version / "reasons.json").read_text())
    for c in table["characteristics"]:
        best = max(range(len(c["bands"])), key=lambda i: c["bands"][i]["contribution"])
        for i, b in enumerate(c["bands"]):
            want = None if i == best else scorecard.band_text(c["name"], c["direction"], b["lower"], b["upper"])
            assert b["text"] == want, (c["name"], i)


#: ONNX Runtime's float32 Sigmoid is not monotone to the last bits: over sorted logits in [-20, 20]
#: it falls by up to 2.4e-7 between neighbours (never across 0.5). A drop that small is not the model's.
ORT_SIGMOID_NOISE = 2.5e-7


@pytest.mark.parametrize("version", VERSIONS)
def test_shipped_onnx_is_as_monotone_as_recorded(version):
    """The recorded monotonicity_violations were swept on the Python model; the ONNX graph the server
    runs, swept the same way (train.ipynb's defaults: the first sweep_n of the fresh applicants),
    has the same count."""
    import numpy as np
    import onnxruntime as ort

    entry = next(v for v in REGISTRY["versions"] if v["version"] == version)
    sess = ort.InferenceSession(str(ROOT / "versions" / version / "model.onnx"), providers=["CPUExecutionProvider"])
    base = scorecard.fresh_applicants(20_000, 20261201).iloc[:1_000]
    v = scorecard.monotonicity_violations(lambda r: sess.run(["probability"], {"features": r})[0].astype(np.float64),
                                          entry["features"], base, tol=ORT_SIGMOID_NOISE)
    assert sum(v.values()) == entry["metrics"]["monotonicity_violations"], v
