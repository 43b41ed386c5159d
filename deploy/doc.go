// Package deploy holds the Kubernetes manifests of ML Service (base/ and the
// kustomize overlays in overlays/) and their tests. It is a module of its
// own so that the Kubernetes and kustomize libraries stay out of the
// server's go.mod; `make test` runs it (make deploy-test). See README.md.
package deploy
