# The model server: `serve` (cgo, ONNX Runtime) on a slim Debian runtime.
# Build from the repository root:
#   docker build -f docker/serve.Dockerfile -t mlservice/serve:local .
# Base images are pinned by tag (no digests: they are resolved where the image
# is built). The Go and Debian releases match (bookworm on both sides), so the
# cgo binary's glibc is the runtime's.

# libonnxruntime.so from the pinned `onnxruntime` wheel (PyPI), as
# scripts/onnxruntime.sh does for `make run`.
FROM python:3.11.14-slim-bookworm AS onnxruntime
ARG ORT_VERSION=1.24.4
WORKDIR /tmp/ort
RUN python -m pip download --no-cache-dir --disable-pip-version-check --no-deps \
        --only-binary=:all: "onnxruntime==${ORT_VERSION}" -d /tmp/ort \
 && python -c "import glob, sys, zipfile; v = sys.argv[1]; \
z = zipfile.ZipFile(glob.glob('/tmp/ort/onnxruntime-*.whl')[0]); \
open('/libonnxruntime.so', 'wb').write(z.read(f'onnxruntime/capi/libonnxruntime.so.{v}'))" "${ORT_VERSION}"

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/serve ./serve \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/healthcheck ./docker/healthcheck

FROM debian:bookworm-slim
# The runtime needs glibc and libstdc++ (both in the slim image) and CA
# certificates for an https MLflow; the certificates come from the build
# stage so the runtime runs no package manager.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=onnxruntime /libonnxruntime.so /usr/local/lib/libonnxruntime.so
COPY --from=build /out/serve /out/healthcheck /usr/local/bin/
RUN groupadd --system --gid 10001 serve \
 && useradd --system --uid 10001 --gid serve --home-dir /var/lib/mlservice --no-create-home serve \
 && mkdir -p /var/lib/mlservice/cache \
 && chown -R serve:serve /var/lib/mlservice
ENV SERVE_ADDR=:8000 \
    SERVE_CACHE_DIR=/var/lib/mlservice/cache \
    ONNXRUNTIME_SHARED_LIBRARY_PATH=/usr/local/lib/libonnxruntime.so
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/local/bin/healthcheck"]
ENTRYPOINT ["/usr/local/bin/serve"]
