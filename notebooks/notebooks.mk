# Makefile fragment for the data-science half (included by the root Makefile; paths are
# relative to the repository root).
#   make notebooks-env   locked Python env in notebooks/.venv (uv sync --frozen) + Jupyter kernel
#   make notebooks-test  pytest under notebooks/tests (real mlflow server, both notebooks, artifacts/)
#   make artifacts       retrain and re-export artifacts/loan-approval from train.ipynb
#   make notebooks       execute eda.ipynb and train.ipynb against a local mlflow (state in notebooks/out)

NOTEBOOKS_DIR := notebooks
NOTEBOOKS_VENV := $(NOTEBOOKS_DIR)/.venv
NOTEBOOKS_PY := $(NOTEBOOKS_VENV)/bin/python
MLFLOW := $(NOTEBOOKS_VENV)/bin/mlflow
NOTEBOOKS_KERNEL := ml-service-notebooks
# Data path: $(LOAN_DATA) if set, else the shared development copy beside the repository.
LOAN_DATA ?= $(abspath ../shared/data/loan_approval.csv)
NOTEBOOKS_UV_ENV := UV_PYTHON=3.11 UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=.venv

.PHONY: notebooks-env notebooks-test artifacts notebooks

notebooks-env: $(NOTEBOOKS_VENV)/.synced ## the notebooks' locked Python env (pinned uv, uv sync --frozen) + Jupyter kernel

# uv is the pinned one from tools.mk (.cache/tools), not whatever is on PATH.
$(NOTEBOOKS_VENV)/.synced: $(NOTEBOOKS_DIR)/pyproject.toml $(NOTEBOOKS_DIR)/uv.lock | $(UV)
	cd $(NOTEBOOKS_DIR) && $(NOTEBOOKS_UV_ENV) $(UV) sync --frozen
	$(NOTEBOOKS_PY) -m ipykernel install --sys-prefix --name $(NOTEBOOKS_KERNEL) \
		--display-name "ML Service notebooks (Python 3.11)" >/dev/null
	touch $@

notebooks-test: notebooks-env ## pytest under notebooks/tests (real MLflow, both notebooks, artifacts/)
	LOAN_DATA="$(LOAN_DATA)" $(NOTEBOOKS_PY) -m pytest -q -p no:cacheprovider $(NOTEBOOKS_DIR)/tests

artifacts: notebooks-env ## retrain and re-export artifacts/loan-approval from train.ipynb
	LOAN_DATA="$(LOAN_DATA)" $(NOTEBOOKS_PY) $(NOTEBOOKS_DIR)/pipeline.py artifacts --out artifacts

notebooks: notebooks-env ## run eda.ipynb and train.ipynb against a local MLflow (state in notebooks/out)
	LOAN_DATA="$(LOAN_DATA)" $(NOTEBOOKS_PY) $(NOTEBOOKS_DIR)/pipeline.py run --state $(NOTEBOOKS_DIR)/out
