# One-shot trainer: runs notebooks/train.ipynb (papermill, the notebooks'
# uv-locked environment) against MLflow through stack/train.py, registers the
# first versions and points the `champion` alias at the best one. It does
# nothing if the model already has a champion. The data set is never in the
# image: mount the CSV at /data/loan_approval.csv.
# Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t mlservice/trainer:local .

FROM python:3.11.14-slim-bookworm
COPY scripts/tools/uv.txt /tmp/uv.txt
RUN python -m pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps -r /tmp/uv.txt
WORKDIR /app/notebooks
COPY notebooks/pyproject.toml notebooks/uv.lock ./
ENV UV_PYTHON=3.11 UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/notebooks-venv UV_NO_CACHE=1
RUN uv sync --frozen \
 && /opt/notebooks-venv/bin/python -m ipykernel install --sys-prefix --name ml-service-notebooks \
        --display-name "ML Service notebooks (Python 3.11)"
COPY notebooks/*.py notebooks/*.ipynb ./
COPY stack/train.py /app/stack/train.py
RUN groupadd --system --gid 10004 trainer \
 && useradd --system --uid 10004 --gid trainer --create-home --home-dir /home/trainer trainer
ENV MLFLOW_TRACKING_URI=http://mlflow:5000 \
    LOAN_DATA=/data/loan_approval.csv \
    PYTHONUNBUFFERED=1
USER 10004:10004
WORKDIR /home/trainer
ENTRYPOINT ["/opt/notebooks-venv/bin/python", "/app/stack/train.py"]
CMD ["--families", "logistic_regression,random_forest", "--workdir", "/home/trainer/runs"]
