# Two runtime images from one file:
#   docker build --target cpu -t twocode:cpu .   (onnxruntime, python:3.11-slim)
#   docker build --target gpu -t twocode:gpu .   (onnxruntime-gpu, NVIDIA CUDA 13 + cuDNN 9 runtime)
# Runtime stages hold a virtual environment and the code: no torch, no compiler.
# `make docker-check` builds and runs the CPU target and guards the GPU target's CUDA versions.

ARG PYTHON_IMAGE=python:3.11-slim
# The CUDA major version here must be the one onnxruntime-gpu (constraints.txt) was built for:
# 1.31.1 is built for CUDA 13 and cuDNN 9 (deploy/check_cuda_versions.py fails when they diverge).
# CUDA 13 needs an NVIDIA driver >= 580 on the host.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# ---- CPU: build the serving venv ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build-cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY modelrepo ./modelrepo
COPY service ./service
RUN /opt/venv/bin/pip install -c constraints.txt ".[serve]"

# ---- CPU runtime --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu
# The service user has a home of its own (ONNX Runtime and Python write caches under $HOME).
RUN useradd --system --uid 10001 --create-home --home-dir /home/app app
COPY --from=build-cpu /opt/venv /opt/venv
COPY --chown=app:app models /srv/models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TWOCODE_HOST=0.0.0.0 \
    TWOCODE_PORT=8000 \
    TWOCODE_MODEL_REPOSITORY=/srv/models \
    TWOCODE_DEVICE=cpu
WORKDIR /srv
USER 10001
EXPOSE 8000
# A volume mounted on /srv/models replaces the shipped model repository.
VOLUME ["/srv/models"]
# /readyz, not /healthz: 503 while no model, or not the default model, serves (or serves off the GPU).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['TWOCODE_PORT']}/readyz\", timeout=2)"]
CMD ["python", "-m", "service"]

# ---- GPU: build the serving venv on the CUDA base (same Python as the runtime) --------------
FROM ${CUDA_IMAGE} AS build-gpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY modelrepo ./modelrepo
COPY service ./service
# onnxruntime-gpu *instead of* onnxruntime: with both installed the CUDA provider disappears.
RUN /opt/venv/bin/pip install -c constraints.txt ".[serve-gpu]" \
    && ! /opt/venv/bin/pip show onnxruntime >/dev/null 2>&1

# ---- GPU runtime --------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS gpu
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /home/app app
COPY --from=build-gpu /opt/venv /opt/venv
COPY --chown=app:app models /srv/models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TWOCODE_HOST=0.0.0.0 \
    TWOCODE_PORT=8000 \
    TWOCODE_MODEL_REPOSITORY=/srv/models \
    TWOCODE_DEVICE=cuda
WORKDIR /srv
USER 10001
EXPOSE 8000
VOLUME ["/srv/models"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['TWOCODE_PORT']}/readyz\", timeout=2)"]
CMD ["python", "-m", "service"]

# ---- Ray Serve on GPU nodes (KubeRay): the GPU image plus Ray --------------------------------
#   docker build --target ray-gpu -t twocode:ray-gpu .   (deploy/kuberay-rayservice.yaml runs it)
FROM build-gpu AS build-ray-gpu
RUN /opt/venv/bin/pip install -c constraints.txt ".[serve-gpu,ray]" \
    && ! /opt/venv/bin/pip show onnxruntime >/dev/null 2>&1

FROM ${CUDA_IMAGE} AS ray-gpu
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3 wget \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /home/app app
COPY --from=build-ray-gpu /opt/venv /opt/venv
COPY --chown=app:app models /srv/models
COPY --chown=app:app deploy /srv/deploy
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TWOCODE_MODEL_REPOSITORY=/srv/models \
    TWOCODE_DEVICE=cuda
WORKDIR /srv
USER 10001
