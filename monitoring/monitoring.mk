# Makefile fragment for monitoring/ (included by the root Makefile; paths are
# relative to the repository root).
#   make monitoring-test-deps  install Debian's prometheus (prometheus + promtool), once
#   make monitoring-check      promtool: both configs, the rules, the rules' unit tests
#   make monitoring-test       the Go tests: datasource uids, alert coverage, every
#                              PromQL expression against a live server and Prometheus

MONITORING_DIR := monitoring
PROMETHEUS_DIR := $(MONITORING_DIR)/prometheus
PROMTOOL ?= promtool

.PHONY: monitoring-test-deps monitoring-check monitoring-test

monitoring-test-deps: ## install prometheus and promtool (Debian package) if missing
	@scripts/apt-install.sh prometheus

monitoring-check: monitoring-test-deps ## promtool check config / check rules / test rules
	$(PROMTOOL) check config $(PROMETHEUS_DIR)/prometheus.yml
	$(PROMTOOL) check config $(PROMETHEUS_DIR)/prometheus.local.yml
	$(PROMTOOL) check rules $(PROMETHEUS_DIR)/rules/*.yml
	cd $(PROMETHEUS_DIR) && $(PROMTOOL) test rules tests/*.yml

monitoring-test: deps monitoring-test-deps ## the monitoring Go tests (live Prometheus + server)
	$(GO) test -count=1 ./$(MONITORING_DIR)/...
