// Package docker holds the container images of the stack (*.Dockerfile, built
// from the repository root). Their tests, and those of the root
// docker-compose.yml, live in the deploy module (deploy/compose_test.go), so
// that the compose-spec loader and BuildKit's parser stay out of the
// server's go.mod. The healthcheck command is the images' HEALTHCHECK probe.
// See README.md.
package docker
