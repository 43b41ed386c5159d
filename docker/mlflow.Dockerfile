# The MLflow tracking server and model registry: sqlite backend and proxied
# artifacts, both under /mlflow (mount a volume there), behind MLflow's
# basic-auth app (docker/mlflow-basic-auth.ini; set MLFLOW_AUTH_ADMIN_PASSWORD
# and MLFLOW_FLASK_SERVER_SECRET_KEY).
# Build from the repository root:
#   docker build -f docker/mlflow.Dockerfile -t mlservice/mlflow:local .
# mlflow is pinned, and so is everything it pulls in, by version and sha256:
# the lock stage exports the notebooks' uv.lock with its hashes and keeps the
# packages mlflow needs (scripts/lock-subset.py); pip installs exactly those
# with --require-hashes --no-deps (the same MLflow the notebooks log with).

FROM python:3.11.14-slim-bookworm AS lock
COPY scripts/tools/uv.txt /tmp/uv.txt
RUN python -m pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps -r /tmp/uv.txt
WORKDIR /lock
COPY notebooks/pyproject.toml notebooks/uv.lock ./
COPY scripts/lock-subset.py ./
RUN uv export --frozen --no-emit-project --format requirements-txt --quiet -o all.txt \
 && python lock-subset.py uv.lock all.txt mlflow flask-wtf >/requirements.txt

FROM python:3.11.14-slim-bookworm
COPY --from=lock /requirements.txt /tmp/requirements.txt
RUN python -m pip install --no-cache-dir --disable-pip-version-check \
        --require-hashes --no-deps -r /tmp/requirements.txt \
 && python -m pip check \
 && rm /tmp/requirements.txt \
 && groupadd --system --gid 10003 mlflow \
 && useradd --system --uid 10003 --gid mlflow --home-dir /mlflow --no-create-home mlflow \
 && mkdir -p /mlflow/artifacts \
 && chown -R mlflow:mlflow /mlflow
# No job runner: its workers each import MLflow and slow start-up a lot.
# Host headers the server accepts: compose's service name plus loopback.
COPY docker/mlflow-basic-auth.ini /etc/mlflow/basic_auth.ini
ENV MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini \
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
     "--host", "0.0.0.0", "--port", "5000", "--workers", "1", "--app-name", "basic-auth"]
