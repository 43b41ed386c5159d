"""Fixtures: a real, throwaway `mlflow server` and one training run through it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent
REPO = NOTEBOOKS.parent
sys.path.insert(0, str(NOTEBOOKS))

import local_mlflow  # noqa: E402
import loan_data  # noqa: E402

KERNEL = "ml-service-notebooks"


def data_path() -> Path:
    return Path(os.environ.get("LOAN_DATA") or REPO.parent / "shared" / "data" / "loan_approval.csv")


def run_notebook(name: str, output: Path, **parameters):
    import papermill

    return papermill.execute_notebook(
        str(NOTEBOOKS / name), str(output), parameters=parameters, kernel_name=KERNEL,
        cwd=str(NOTEBOOKS), progress_bar=False,
    )


@pytest.fixture(scope="session")
def loan_csv() -> Path:
    path = data_path()
    if not path.is_file():
        pytest.fail(loan_data.missing_data_message(path))
    return path


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory):
    with local_mlflow.mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture(scope="session")
def trained(mlflow_uri, loan_csv, tmp_path_factory):
    """train.ipynb with its defaults, registered through the server with alias champion."""
    out = tmp_path_factory.mktemp("train")
    run_notebook("train.ipynb", out / "train.ipynb", data_path=str(loan_csv), tracking_uri=mlflow_uri,
                 alias="champion", output_dir=str(out / "out"))
    result = json.loads((out / "out" / "result.json").read_text())
    return result
