# The legacy IT side: the loan officer's form and the nightly batch job.
# Included by the root Makefile; see legacy/README.md.

LEGACY_ADDR ?= :8080
LEGACY_API ?= http://127.0.0.1:8000
LEGACY_QUEUE ?= $(CURDIR)/.cache/legacy/queue
LEGACY_IN ?= $(CURDIR)/../shared/data/loan_approval.csv
LEGACY_OUT ?= $(CURDIR)/testout/legacy/decisions.csv

.PHONY: legacy-test-deps legacy-web legacy-batch legacy-test

legacy-test-deps: ## install Debian's Chromium for the form's browser tests (chromedp drives it directly; no chromedriver)
	@scripts/apt-install.sh chromium fonts-dejavu-core

legacy-web: ## the loan officer's form on $(LEGACY_ADDR), deciding with $(LEGACY_API)
	$(GO) run ./legacy web -addr $(LEGACY_ADDR) -api $(LEGACY_API) -queue $(LEGACY_QUEUE)

legacy-batch: ## decide $(LEGACY_IN) into $(LEGACY_OUT) (resumable; rerun after a failure)
	@mkdir -p $(dir $(LEGACY_OUT))
	$(GO) run ./legacy batch -in $(LEGACY_IN) -out $(LEGACY_OUT) -api $(LEGACY_API)

legacy-test: deps legacy-test-deps ## only the legacy side's tests (browser included)
	$(GO) test -race -count=1 ./legacy/...
