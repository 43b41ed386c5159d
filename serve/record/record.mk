# The decision record's test dependencies (included by the root Makefile;
# paths are relative to the repository root).
#   make record-test-deps  Debian's postgresql (initdb + postgres for the
#                          record's PostgreSQL tests, run by the tests
#                          themselves on a free port) and e2fsprogs (chattr,
#                          to make the SQLite file unwritable in the outage test)

.PHONY: record-test-deps

record-test-deps: ## PostgreSQL and chattr for the decision-record tests (Debian packages)
	@$(APT_INSTALL) postgresql e2fsprogs
