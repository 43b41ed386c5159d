# The loan officer's web form (`legacy web`). Its queue of not-yet-decided
# applications lives in /var/lib/legacy/queue: mount a volume there.
# Build from the repository root:
#   docker build -f docker/legacy.Dockerfile -t mlservice/legacy:local .

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/legacy ./legacy \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/healthcheck ./docker/healthcheck

FROM debian:bookworm-slim
COPY --from=build /out/legacy /out/healthcheck /usr/local/bin/
RUN groupadd --system --gid 10002 legacy \
 && useradd --system --uid 10002 --gid legacy --home-dir /var/lib/legacy --no-create-home legacy \
 && mkdir -p /var/lib/legacy/queue \
 && chown -R legacy:legacy /var/lib/legacy
USER 10002:10002
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:8080/"]
ENTRYPOINT ["/usr/local/bin/legacy"]
CMD ["web", "-addr", ":8080", "-api", "http://lb:8000", "-queue", "/var/lib/legacy/queue"]
