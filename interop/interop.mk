# Makefile fragment for the Open Inference Protocol interop checks (included by
# the root Makefile). interop/ is its own locked uv project: tritonclient[http]
# and kserve, pinned in uv.lock, apart from the notebooks' environment.
#   make interop-env    interop/.venv (uv sync --frozen); `make test` installs it
#   make interop-test   go test ./interop (starts the real server, runs check.py)

INTEROP_DIR := interop

.PHONY: interop-env interop-test

interop-env: $(INTEROP_DIR)/.venv/.synced ## the interop checks' locked Python env (pinned uv, uv sync --frozen)

$(INTEROP_DIR)/.venv/.synced: $(INTEROP_DIR)/pyproject.toml $(INTEROP_DIR)/uv.lock | $(UV)
	cd $(INTEROP_DIR) && UV_PYTHON=3.11 UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=.venv $(UV) sync --frozen
	touch $@

interop-test: deps interop-env ## the Open Inference Protocol interop checks (real server, tritonclient, kserve)
	$(GO) test -count=1 ./interop
