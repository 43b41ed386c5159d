# The round-robin load balancer in front of the scaled `serve` service
# (stack/lb). In compose it finds the replicas through Docker's DNS:
#   lb -addr :8000 -resolve serve:8000
# Build from the repository root:
#   docker build -f docker/lb.Dockerfile -t mlservice/lb:local .

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY stack/lb ./stack/lb
COPY docker/healthcheck ./docker/healthcheck
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/lb ./stack/lb \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/healthcheck ./docker/healthcheck

FROM debian:bookworm-slim
COPY --from=build /out/lb /out/healthcheck /usr/local/bin/
USER 65534:65534
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:8000/-/lb"]
ENTRYPOINT ["/usr/local/bin/lb"]
CMD ["-addr", ":8000", "-resolve", "serve:8000"]
