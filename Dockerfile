# syntax=docker/dockerfile:1
#
# One image for every agentbus role; the command picks the role:
#   docker build -t agentbus:latest .
#   docker run --rm agentbus:latest migrate
#   docker run --rm -p 8000:8000 agentbus:latest          # = run --role api --host 0.0.0.0 --port 8000
#   docker run --rm agentbus:latest run --role worker-cpu
# Configuration comes from the environment (AGENTBUS_DATABASE_URL, AGENTBUS_REDIS_URL, AGENTBUS_SECRET,
# AGENTBUS_APP); see compose.yaml for a complete deployment. The image is production by default
# (AGENTBUS_ENV=production): every role refuses to start without an AGENTBUS_SECRET of your own.
# GPU workers: Dockerfile.gpu (a CUDA base and the gpu extra).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------------
# build: the project and its dependencies, installed into a virtualenv that the runtime stage copies.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler, only for a dependency that has no wheel for the target platform (e.g. some on arm64).
# It stays in this stage; the runtime image does not get it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

# Optional extras, e.g. `docker build --build-arg AGENTBUS_EXTRAS="[minilm]" .`; empty by default, i.e. a
# plain `pip install .`. (The gpu extra belongs on a CUDA base: Dockerfile.gpu.)
ARG AGENTBUS_EXTRAS=""

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"
WORKDIR /src

# Dependencies first, with an empty stand-in package, so that a code change does not reinstall
# numpy/numba/... (this layer is rebuilt only when pyproject.toml or README.md change).
COPY pyproject.toml README.md ./
RUN mkdir agentbus \
    && touch agentbus/__init__.py \
    && pip install ".${AGENTBUS_EXTRAS}" \
    && pip uninstall -y agentbus \
    && rm -rf agentbus build ./*.egg-info

# Then the project itself.
COPY agentbus ./agentbus
RUN pip install --no-deps . \
    && agentbus --help > /dev/null

# ---------------------------------------------------------------------------------------------------
# runtime: slim Python, the virtualenv, a non-root user.
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="agentbus" \
      org.opencontainers.image.description="A durable job bus for AI-agent workloads" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    AGENTBUS_ENV=production \
    AGENTBUS_METRICS_PORT=9090

RUN groupadd --system --gid 10001 agentbus \
    && useradd --system --uid 10001 --gid agentbus --create-home --home-dir /home/agentbus \
       --shell /usr/sbin/nologin agentbus

COPY --from=build /opt/venv /opt/venv

# Numeric, so that runtimes enforcing "non-root" (e.g. Kubernetes runAsNonRoot) can verify it.
USER 10001:10001
WORKDIR /home/agentbus

EXPOSE 8000 9090

# /readyz of the api role (the default command) on :8000. The orchestrator and the workers serve theirs on
# the metrics port: `docker run -e AGENTBUS_HEALTH_URL=http://127.0.0.1:9090/readyz ...` (compose.yaml
# and the Kubernetes manifests define their own checks).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen(os.environ.get('AGENTBUS_HEALTH_URL', 'http://127.0.0.1:8000/readyz'), timeout=4); sys.exit(0 if r.status == 200 else 1)"]

ENTRYPOINT ["agentbus"]
# `agentbus run` binds 127.0.0.1 by default, which nothing outside the container could reach.
CMD ["run", "--role", "api", "--host", "0.0.0.0", "--port", "8000"]
