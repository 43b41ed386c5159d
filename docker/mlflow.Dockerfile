# The MLflow tracking server and model registry: sqlite backend and proxied
# artifacts, both under /mlflow (mount a volume there).
# Build from the repository root:
#   docker build -f docker/mlflow.Dockerfile -t mlservice/mlflow:local .
# mlflow is pinned, and so is everything it pulls in: the versions come from
# the notebooks' uv.lock (the same MLflow the notebooks log with).

FROM python:3.11.14-slim-bookworm AS lock
RUN python -m pip install --no-cache-dir --disable-pip-version-check uv==0.13.9
WORKDIR /lock
COPY notebooks/pyproject.toml notebooks/uv.lock ./
RUN uv export --frozen --no-hashes --no-emit-project --format requirements-txt -o /constraints.txt

FROM python:3.11.14-slim-bookworm
COPY --from=lock /constraints.txt /tmp/constraints.txt
RUN python -m pip install --no-cache-dir --disable-pip-version-check \
        -c /tmp/constraints.txt mlflow==3.17.2 \
 && rm /tmp/constraints.txt \
 && groupadd --system --gid 10003 mlflow \
 && useradd --system --uid 10003 --gid mlflow --home-dir /mlflow --no-create-home mlflow \
 && mkdir -p /mlflow/artifacts \
 && chown -R mlflow:mlflow /mlflow
# No job runner: its workers each import MLflow and slow start-up a lot.
# Host headers the server accepts: compose's service name plus loopback.
ENV MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    MLFLOW_SERVER_ALLOWED_HOSTS=mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:* \
    PYTHONUNBUFFERED=1
VOLUME ["/mlflow"]
WORKDIR /mlflow
USER 10003:10003
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4).status != 200)"]
ENTRYPOINT ["mlflow", "server"]
CMD ["--backend-store-uri", "sqlite:////mlflow/mlflow.db", \
     "--artifacts-destination", "/mlflow/artifacts", "--serve-artifacts", \
     "--host", "0.0.0.0", "--port", "5000", "--workers", "1"]
