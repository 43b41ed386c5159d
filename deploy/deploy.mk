# Kubernetes manifests (deploy/): a Go module of its own, so k8s.io/api and
# kustomize stay out of the server's go.mod. Included by the root Makefile.
#   make deploy-test               strict decoding into k8s.io/api types, kustomize rendering, invariants
#   make deploy-render OVERLAY=production   print what `kubectl apply -k deploy/overlays/production` applies

OVERLAY ?= production

.PHONY: deploy-test deploy-render

deploy-test: $(HADOLINT) ## the deployment tests (own Go module): Kubernetes manifests, compose file, Dockerfiles (BuildKit, hadolint)
	cd deploy && $(GO) test -count=1 ./...

deploy-render: ## print the rendered manifests of deploy/overlays/$(OVERLAY)
	cd deploy && $(GO) tool kustomize build overlays/$(OVERLAY)
