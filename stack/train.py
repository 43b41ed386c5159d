"""Register the first model versions in a running MLflow and point `champion` at the best.

    python stack/train.py [--tracking-uri URI] [--data CSV] [--families a,b] [--workdir DIR]
        runs notebooks/train.ipynb (papermill) once per model family against the server,
        then sets the alias `champion` to the best version (pipeline.choose_champion).
    python stack/train.py --from-artifacts artifacts/loan-approval [--tracking-uri URI]
        registers the shipped versions unchanged (internal/mlflowtest/register_version.py)
        with the shipped aliases: seconds instead of a training run, for tests.

Used by `make stack` and by the compose stack's one-shot `trainer` service. If the model
already has a champion it does nothing (a second `docker compose up` keeps the registry as
it is); --force trains anyway. The tracking URI defaults to $MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = Path(os.environ.get("MLSERVICE_NOTEBOOKS", HERE.parent / "notebooks"))
sys.path.insert(0, str(NOTEBOOKS))


def wait_for(uri: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"train: MLflow at {uri} not healthy after {timeout:.0f}s")
        time.sleep(1)


def champion(client, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name).aliases.get("champion")
    except MlflowException:
        return None


def train(uri: str, name: str, data: str, families: list[str], workdir: Path) -> str:
    import pipeline  # notebooks/pipeline.py: papermill with the notebooks' kernel
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    before = {v.version for v in client.search_model_versions(f"name='{name}'")}
    for family in families:
        print(f"train: {family} -> {uri}", flush=True)
        params = {"data_path": data, "tracking_uri": uri, "registered_model_name": name,
                  "features": pipeline.DEFAULT_FEATURES, "model_family": family,
                  "output_dir": str(workdir / family)}
        pipeline.execute("train.ipynb", workdir / f"train-{family}.ipynb", params)
    new = [{"version": v.version, "metrics": client.get_run(v.run_id).data.metrics}
           for v in client.search_model_versions(f"name='{name}'") if v.version not in before]
    if not new:
        raise SystemExit("train: the notebook registered no version")
    best = pipeline.choose_champion(new)
    client.set_registered_model_alias(name, "champion", best)
    return best


def register_shipped(uri: str, name: str, source: Path) -> str:
    """Register source/versions/N in order and set the aliases of source/registry.json."""
    from mlflow import MlflowClient

    script = HERE.parent / "internal" / "mlflowtest" / "register_version.py"
    shipped = json.loads((source / "registry.json").read_text())
    dirs = sorted((source / "versions").iterdir(), key=lambda p: int(p.name))
    out = subprocess.run([sys.executable, str(script), uri, name, *map(str, dirs)],
                         check=True, capture_output=True, text=True).stdout
    registered = [json.loads(line)["version"] for line in out.splitlines() if line.startswith("{")]
    by_shipped = dict(zip((d.name for d in dirs), registered))
    client = MlflowClient(uri)
    for alias, version in shipped.get("aliases", {}).items():
        client.set_registered_model_alias(name, alias, by_shipped[version])
    return by_shipped[shipped["aliases"]["champion"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""))
    parser.add_argument("--model", default=os.environ.get("SERVE_MODEL", "loan-approval"))
    parser.add_argument("--data", default=os.environ.get("LOAN_DATA", ""))
    parser.add_argument("--families", default="logistic_regression,random_forest")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--from-artifacts", default="", help="register these shipped versions instead of training")
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for MLflow's /health")
    parser.add_argument("--force", action="store_true", help="train even if the model has a champion")
    args = parser.parse_args()
    if not args.tracking_uri:
        raise SystemExit("train: no tracking URI (--tracking-uri or MLFLOW_TRACKING_URI)")
    uri = args.tracking_uri.rstrip("/")
    wait_for(uri, args.wait)

    from mlflow import MlflowClient

    existing = champion(MlflowClient(uri), args.model)
    if existing and not args.force:
        print(f"train: {args.model} already has champion -> version {existing}; nothing to do", flush=True)
        return
    if args.from_artifacts:
        best = register_shipped(uri, args.model, Path(args.from_artifacts))
    else:
        families = [f.strip() for f in args.families.split(",") if f.strip()]
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
            best = train(uri, args.model, args.data, families, Path(args.workdir))
        else:
            with tempfile.TemporaryDirectory(prefix="train-") as tmp:
                best = train(uri, args.model, args.data, families, Path(tmp))
    print(f"train: {args.model} champion -> version {best}", flush=True)


if __name__ == "__main__":
    main()
