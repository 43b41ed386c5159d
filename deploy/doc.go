// Package deploy holds the Kubernetes manifests of ML Service (base/ and the
// kustomize overlays in overlays/) and the tests of everything that deploys
// it: the manifests (manifests_test.go), the root docker-compose.yml and the
// Dockerfiles in docker/ (compose_test.go). It is a module of its own so
// that k8s.io/api, kustomize, compose-go and BuildKit stay out of the
// server's go.mod; `make test` runs it (make deploy-test). See README.md.
package deploy
