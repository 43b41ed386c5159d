"""artifacts/loan-approval: the versions the Go server ships with."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

import loan_data
from test_notebooks import assert_pyfunc_predicts_dataframe, assert_reproduces

ROOT = Path(__file__).resolve().parents[2] / "artifacts" / "loan-approval"
REGISTRY = json.loads((ROOT / "registry.json").read_text())
VERSIONS = [v["version"] for v in REGISTRY["versions"]]


def test_registry_state():
    assert REGISTRY["name"] == "loan-approval"
    assert len(VERSIONS) >= 2
    assert REGISTRY["aliases"]["champion"] in VERSIONS
    families = {v["description"].split(";")[0] for v in REGISTRY["versions"]}
    assert {"logistic_regression", "random_forest"} <= families
    dirs = sorted(p.name for p in (ROOT / "versions").iterdir())
    assert dirs == sorted(VERSIONS)
    champion = next(v for v in REGISTRY["versions"] if v["version"] == REGISTRY["aliases"]["champion"])
    assert champion["metrics"]["roc_auc"] == max(v["metrics"]["roc_auc"] for v in REGISTRY["versions"])


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
