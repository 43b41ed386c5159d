# The decision record's test dependencies (included by the root Makefile;
# paths are relative to the repository root).
#   make record-test-deps  Debian's postgresql: initdb + postgres for the
#                          record's PostgreSQL tests, which start their own
#                          cluster on a free port (internal/pgtest)

.PHONY: record-test-deps

record-test-deps: ## PostgreSQL for the decision-record tests (Debian package)
	@$(APT_INSTALL) postgresql
