# Makefile fragment: the Swagger UI that /docs serves (included by the root
# Makefile). swagger-ui-dist is pinned in package-lock.json and installed with
# npm ci; the few files the page needs are copied into serve/api/assets/swagger/
# (git-ignored) and embedded in the binary from there. `make deps` runs it.
#   make swagger-ui   install and copy (a no-op when up to date)

SWAGGER_DIR := serve/api/swagger
SWAGGER_ASSETS := serve/api/assets/swagger
# serve/api/docs.go serves exactly these.
SWAGGER_FILES := swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE

.PHONY: swagger-ui

swagger-ui: $(SWAGGER_ASSETS)/.installed ## the pinned Swagger UI files /docs embeds (npm ci)

$(SWAGGER_ASSETS)/.installed: $(SWAGGER_DIR)/package.json $(SWAGGER_DIR)/package-lock.json
	@command -v npm >/dev/null || scripts/apt-install.sh npm
	cd $(SWAGGER_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cp $(addprefix $(SWAGGER_DIR)/node_modules/swagger-ui-dist/,$(SWAGGER_FILES)) $(SWAGGER_ASSETS)/
	touch $@
