# ML Service — every entry point. `make run` and `make test` work on a fresh
# machine: they fetch what is missing first. See README.md.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ORT_VERSION ?= 1.24.4
# The ONNX Runtime library comes from the pinned `onnxruntime` wheel on PyPI,
# unpacked into .cache/ (git-ignored). Set ONNXRUNTIME_SHARED_LIBRARY_PATH to
# use another copy.
ONNXRUNTIME_SHARED_LIBRARY_PATH ?= $(CURDIR)/.cache/onnxruntime/$(ORT_VERSION)/libonnxruntime.so
export ONNXRUNTIME_SHARED_LIBRARY_PATH
export CGO_ENABLED := 1

GO ?= go
# Each fuzz target runs FUZZTIME: a count of executions (Nx), not a duration.
# Go 1.26's fuzz coordinator can fail a run at a duration's deadline with a
# bare "context deadline exceeded" and no failing input (go.dev/issue/75804,
# fixed in Go 1.27); CI hit it on 2 cores. A count has no deadline to race.
# Minimizing each new input is capped by count too: the default (60 s each)
# let one huge seed stall a run for minutes.
FUZZTIME ?= 100000x
FUZZMINIMIZETIME ?= 1000x
FUZZ_TARGETS := schemas:FuzzDecodeApplication schemas:FuzzBatchEnvelope \
	serve/api:FuzzPredict serve/hooks:FuzzWebhook serve/oip:FuzzInferBinary

include tools.mk
include notebooks/notebooks.mk
include legacy/legacy.mk
include monitoring/monitoring.mk
include stack/stack.mk
include deploy/deploy.mk
include interop/interop.mk
include serve/api/swagger/swagger.mk
include serve/record/record.mk

.PHONY: help run build test-deps test test-go lint fuzz bench deps ort clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'

# Runs every time: it re-checks the cached library's sha256 (pinned in
# scripts/onnxruntime.sh, as is the wheel's) and fetches it again if altered.
ort: ## fetch the ONNX Runtime shared library (pinned sha256), or re-check the cached one
	@ORT_VERSION=$(ORT_VERSION) scripts/onnxruntime.sh >/dev/null

deps: ort swagger-ui ## fetch Go modules, the ONNX Runtime library and the Swagger UI files
	$(GO) mod download

run: deps ## serve the embedded default model on :8000
	$(GO) run ./serve

build: deps ## build bin/serve
	$(GO) build -o bin/serve ./serve

# Everything the tests need; add your area's *-deps target here (one word).
test-deps: deps notebooks-env interop-env legacy-test-deps monitoring-test-deps stack-test-deps record-test-deps ## install what the tests need

test: test-deps ## set up everything and run every test
	$(GO) vet ./...
	$(MAKE) --no-print-directory lint
	$(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory deploy-test
	$(MAKE) --no-print-directory monitoring-check
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory notebooks-test

test-go: test-deps ## only the Go tests
	$(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory deploy-test

lint: fmt-check ## gofmt check and staticcheck (pinned by go.mod's tool directive)
	$(GO) tool staticcheck ./...

fuzz: deps ## each target in FUZZ_TARGETS for FUZZTIME executions
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $${t#*:} ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$${t#*:}\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./$${t%%:*}; \
	done

bench: deps notebooks-env record-test-deps ## benchmarks; writes BENCHMARKS.md (knobs: bench/run.sh)
	bench/run.sh

clean: ## remove build output and caches of this checkout
	rm -rf bin .cache notebooks/.venv interop/.venv
