# nertune serve in a container. CPU (default):
#   docker build -t nertune-serve .
#   docker run -p 8000:8000 -v "$PWD/runs/quickstart:/model:ro" nertune-serve
# GPU: the CUDA torch wheel (it bundles the CUDA runtime; the driver comes from the host through the NVIDIA
# Container Toolkit):
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t nertune-serve:gpu .
#   docker run --gpus all -p 8000:8000 -v "$PWD/runs/quickstart:/model:ro" nertune-serve:gpu
# Options after the image name are added to `nertune serve /model --host 0.0.0.0` (e.g. --api-key-file).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC=torch==2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

WORKDIR /app
# torch first, from its own index (CPU or CUDA build); the lock pins everything else.
RUN pip install --index-url "${TORCH_INDEX}" "${TORCH_SPEC}"
COPY pyproject.toml requirements.lock README.md ./
COPY src ./src
RUN pip install -c requirements.lock ".[serve]"

RUN useradd --create-home --uid 10001 nertune
USER nertune
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
# Exec form: nertune is PID 1 and gets `docker stop`'s SIGTERM itself (finishes requests in flight, exits 0).
ENTRYPOINT ["nertune", "serve", "/model", "--host", "0.0.0.0"]
