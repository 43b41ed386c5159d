"""Register MLflow model directories as new versions, the way notebooks/train.ipynb does.

    python register_version.py TRACKING_URI MODEL DIR [DIR ...]

For each DIR, in order: a run logs the model with mlflow.onnx.log_model (signature and
input example read back from DIR/MLmodel), adds serving_check.json to the logged
model's directory, and registers the logged model as a new version of MODEL. Prints one
JSON line per version: {"version", "model_id", "run_id", "source"}.

Unlike the notebook, it then uploads DIR's own ONNX file and any file log_model does
not write (ONNX external data) unchanged, so the registry serves exactly DIR's bytes
and a test can register a deliberately corrupt model. It reuses DIR/requirements.txt
instead of inferring requirements, which takes a subprocess and many seconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import mlflow.onnx
import onnx
from mlflow.models import Model

# Files mlflow.onnx.log_model writes itself; any other file of DIR is uploaded as is.
GENERATED = {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt",
             "input_example.json", "serving_input_example.json", "registered_model_meta"}


def placeholder_model() -> onnx.ModelProto:
    """A valid one-node model to log when DIR's ONNX file does not even parse."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "broken", [x], [y])
    return onnx.helper.make_model(graph)


def register(client: mlflow.MlflowClient, name: str, src: Path) -> dict:
    meta = Model.load(str(src / "MLmodel"))
    data = (meta.flavors.get("onnx") or {}).get("data", "model.onnx")
    try:
        onnx_model = onnx.load(str(src / data))
    except Exception:  # deliberately corrupt: log a valid model, then upload DIR's bytes
        onnx_model = placeholder_model()
    try:
        input_example = meta.load_input_example(str(src))
    except Exception:
        input_example = None
    requirements = src / "requirements.txt"
    check = src / "serving_check.json"

    with mlflow.start_run(run_name=f"register-{src.name}"):
        mlflow.set_tags({"source_dir": str(src)})
        if check.is_file():
            mlflow.log_artifact(str(check))
        info = mlflow.onnx.log_model(
            onnx_model,
            name="model",
            signature=meta.signature,
            input_example=input_example,
            onnx_execution_providers=["CPUExecutionProvider"],
            pip_requirements=str(requirements) if requirements.is_file() else None,
            save_as_external_data=False,
        )
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = f.relative_to(src)
            if rel.as_posix() in GENERATED:
                continue
            parent = rel.parent.as_posix()
            client.log_model_artifact(info.model_id, str(f), None if parent == "." else parent)
    version = mlflow.register_model(info.model_uri, name, tags={"source_dir": str(src)})
    return {"version": str(version.version), "model_id": info.model_id,
            "run_id": version.run_id, "source": version.source}


def main(uri: str, name: str, dirs: list[str]) -> None:
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("mlflowtest")
    client = mlflow.MlflowClient()
    for d in dirs:
        print(json.dumps(register(client, name, Path(d).resolve())), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
