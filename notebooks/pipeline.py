"""Run the notebooks against a throwaway local MLflow and export registered versions.

    python notebooks/pipeline.py artifacts [--data CSV] [--out artifacts]
        trains the shipped versions with train.ipynb (logistic regression, random forest, the
        scorecard, the optbinning scorecard), registers them, makes the best on fresh applicants
        `champion` (choose_champion), and writes artifacts/loan-approval/{registry.json,versions/N}
    python notebooks/pipeline.py run [--data CSV] [--state notebooks/out]
        executes eda.ipynb and train.ipynb (default parameters, alias champion) against a local
        mlflow server whose state stays in --state, for people who want to look at the result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import local_mlflow  # noqa: E402

KERNEL = "ml-service-notebooks"
MODEL_NAME = "loan-approval"
DEFAULT_FEATURES = ["income", "credit_score", "loan_amount", "years_employed"]
#: The versions `make artifacts` produces, in registration order. 1 and 2 are the versions shipped
#: before the scorecard (kept so old and new can be compared, e.g. by make bench); the scorecard's
#: run also compares every candidate family over repeated splits.
ARTIFACT_RUNS = [
    {"model_family": "logistic_regression"},
    {"model_family": "random_forest"},
    {"model_family": "scorecard", "repeated_splits": 5},
    {"model_family": "scorecard_optbinning"},
]
#: Metrics copied into registry.json for every version.
REGISTRY_METRICS = ("accuracy", "roc_auc", "fresh_accuracy", "fresh_roc_auc", "edge_accuracy",
                    "monotonicity_violations")


def execute(notebook: str, output: Path, parameters: dict) -> None:
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(HERE / notebook), str(output), parameters=parameters, kernel_name=KERNEL,
        cwd=str(HERE), progress_bar=False,
    )


def champion_key(v: dict):
    """Fewest monotonicity violations, then accuracy on fresh rule-labelled applicants, then at the
    band edges, then fresh ROC AUC, then the newer version. (The 500-row test split cannot rank
    models that differ by a few rows: its standard error is about 0.6 points.)"""
    m = v["metrics"]
    return (-m["monotonicity_violations"], round(m["fresh_accuracy"], 4), round(m["edge_accuracy"], 4),
            round(m["fresh_roc_auc"], 6), int(v["version"]))


def choose_champion(versions: list[dict]) -> str:
    return max(versions, key=champion_key)["version"]


def export_registry(tracking_uri: str, name: str, dest: Path) -> dict:
    """Copy every version of `name` (downloaded through the server) and its state into dest/name."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    model = client.get_registered_model(name)
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    root = dest / name
    if root.exists():
        shutil.rmtree(root)
    (root / "versions").mkdir(parents=True)
    entries = []
    for v in versions:
        target = root / "versions" / str(v.version)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{v.version}", dst_path=tmp))
            shutil.copytree(local, target)
        (target / "registered_model_meta").unlink(missing_ok=True)  # download-time bookkeeping
        for required in ("MLmodel", "model.onnx", "serving_check.json", "training_distribution.json"):
            if not (target / required).is_file():
                raise RuntimeError(f"version {v.version} has no {required}")
        run = client.get_run(v.run_id)
        entries.append({
            "version": str(v.version),
            "description": v.description or "",
            "run_id": v.run_id,
            "metrics": {k: run.data.metrics[k] for k in REGISTRY_METRICS},
            "features": json.loads(v.tags["features"]),
        })
    registry = {
        "name": name,
        "aliases": {alias: str(version) for alias, version in sorted(model.aliases.items())},
        "tags": dict(model.tags),
        "versions": entries,
    }
    (root / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
    return registry


def build_artifacts(data: str, out: Path, workdir: Path) -> dict:
    import mlflow

    with local_mlflow.mlflow_server(workdir / "mlflow") as uri:
        for i, spec in enumerate(ARTIFACT_RUNS, start=1):
            params = {"data_path": data, "tracking_uri": uri, "registered_model_name": MODEL_NAME,
                      "features": DEFAULT_FEATURES, "output_dir": str(workdir / f"train-{i}"), **spec}
            print(f"training version {i}: {spec}", flush=True)
            execute("train.ipynb", workdir / f"train-{i}.ipynb", params)
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient()
        versions = [{"version": v.version, "metrics": client.get_run(v.run_id).data.metrics}
                    for v in client.search_model_versions(f"name='{MODEL_NAME}'")]
        champion = choose_champion(versions)
        client.set_registered_model_alias(MODEL_NAME, "champion", champion)
        registry = export_registry(uri, MODEL_NAME, out)
    print(json.dumps(registry, indent=2))
    return registry


def run_notebooks(data: str, state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    execute("eda.ipynb", state / "eda.ipynb", {"data_path": data})
    with local_mlflow.mlflow_server(state / "mlflow") as uri:
        execute("train.ipynb", state / "train.ipynb",
                {"data_path": data, "tracking_uri": uri, "alias": "champion",
                 "output_dir": str(state / "train")})
    print(f"executed notebooks in {state}; browse the runs with:\n"
          f"  notebooks/.venv/bin/mlflow ui --backend-store-uri sqlite:///{(state / 'mlflow' / 'mlflow.db').resolve()}"
          f" --artifacts-destination {(state / 'mlflow' / 'mlartifacts').resolve()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("artifacts")
    a.add_argument("--data", default="")
    a.add_argument("--out", default=str(HERE.parent / "artifacts"))
    r = sub.add_parser("run")
    r.add_argument("--data", default="")
    r.add_argument("--state", default=str(HERE / "out"))
    args = parser.parse_args()
    if args.command == "artifacts":
        with tempfile.TemporaryDirectory(prefix="artifacts-") as tmp:
            build_artifacts(args.data, Path(args.out), Path(tmp))
    else:
        run_notebooks(args.data, Path(args.state))


if __name__ == "__main__":
    main()
