// Package docker holds the container images of the stack (*.Dockerfile, built
// from the repository root) and the tests that check them and the root
// docker-compose.yml without a Docker engine: the compose-spec loader and
// BuildKit's Dockerfile parser, plus hadolint when it is installed. The
// healthcheck command is the images' HEALTHCHECK probe. See README.md.
package docker
