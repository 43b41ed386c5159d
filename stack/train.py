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

Against MLflow's basic-auth app it runs as the admin ($MLFLOW_TRACKING_USERNAME and
$MLFLOW_TRACKING_PASSWORD, as every MLflow client does) and first sets up the servers'
accounts (idempotent, on every run):
    --reader USER   (password $MLFLOW_READER_PASSWORD) the servers' user: the default
                    permission READ, nothing more
    --writer USER   (password $MLFLOW_WRITER_PASSWORD) the user the servers' /admin writes
                    aliases and tags as: EDIT on the registered model, once it exists
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


def auth_call(uri: str, method: str, path: str, body: dict) -> tuple[int, dict]:
    """One call of MLflow's auth REST API as the admin; returns (status, JSON body)."""
    import base64
    import urllib.error
    import urllib.request

    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME", ""), os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    req = urllib.request.Request(f"{uri}{path}", method=method, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, {"message": raw.decode(errors="replace")[:200]}


def ensure_user(uri: str, username: str, password: str) -> None:
    """Create a basic-auth user, or set its password if it exists."""
    if len(password) < 12:
        raise SystemExit(f"train: the password of MLflow user {username} is shorter than 12 characters")
    status, body = auth_call(uri, "POST", "/api/2.0/mlflow/users/create", {"username": username, "password": password})
    if status == 200:
        print(f"train: MLflow user {username} created", flush=True)
        return
    if body.get("error_code") != "RESOURCE_ALREADY_EXISTS":
        raise SystemExit(f"train: creating MLflow user {username}: {status} {body}")
    status, body = auth_call(uri, "PATCH", "/api/2.0/mlflow/users/update-password", {"username": username, "password": password})
    if status != 200:
        raise SystemExit(f"train: setting the password of MLflow user {username}: {status} {body}")


def grant_edit(uri: str, username: str, model: str) -> None:
    """EDIT on the registered model (set aliases and tags; no deletes, no permissions)."""
    status, body = auth_call(uri, "POST", "/api/3.0/mlflow/users/permissions/grant",
                             {"username": username, "resource_type": "registered_model",
                              "resource_id": model, "permission": "EDIT"})
    if status != 200 and body.get("error_code") != "RESOURCE_ALREADY_EXISTS":
        raise SystemExit(f"train: granting EDIT on {model} to {username}: {status} {body}")
    print(f"train: MLflow user {username} may edit {model}", flush=True)


def accounts(uri: str, args) -> None:
    if args.reader:
        ensure_user(uri, args.reader, os.environ.get("MLFLOW_READER_PASSWORD", ""))
    if args.writer:
        ensure_user(uri, args.writer, os.environ.get("MLFLOW_WRITER_PASSWORD", ""))


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
    parser.add_argument("--families", default="logistic_regression,random_forest,scorecard")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--from-artifacts", default="", help="register these shipped versions instead of training")
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for MLflow's /health")
    parser.add_argument("--force", action="store_true", help="train even if the model has a champion")
    parser.add_argument("--reader", default="", help="MLflow basic-auth user of the servers (password: $MLFLOW_READER_PASSWORD)")
    parser.add_argument("--writer", default="", help="MLflow basic-auth user of /admin (password: $MLFLOW_WRITER_PASSWORD)")
    parser.add_argument("--accounts-only", action="store_true", help="set up --reader and --writer, register nothing")
    args = parser.parse_args()
    if not args.tracking_uri:
        raise SystemExit("train: no tracking URI (--tracking-uri or MLFLOW_TRACKING_URI)")
    uri = args.tracking_uri.rstrip("/")
    wait_for(uri, args.wait)

    from mlflow import MlflowClient

    accounts(uri, args)
    if args.accounts_only:
        return
    existing = champion(MlflowClient(uri), args.model)
    if existing and not args.force:
        if args.writer:
            grant_edit(uri, args.writer, args.model)
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
    if args.writer:
        grant_edit(uri, args.writer, args.model)
    print(f"train: {args.model} champion -> version {best}", flush=True)


if __name__ == "__main__":
    main()
