# realauth image. The install steps are the Makefile's (`make venv`): a venv, pip upgraded, the project installed
# from pyproject.toml — without the dev extras, and non-editable. The generated stubs are committed, so no codegen.
# tests/test_deploy_kit.py checks that these steps, the ports, the user and the health check stay in step with the
# Makefile, the server's defaults and the Kubernetes manifests.
#   docker build -t realauth .
#   docker run -p 50051:50051 -p 8080:8080 realauth                      # sandbox mode
#   docker run -v $PWD/realauth.toml:/etc/realauth/realauth.toml:ro realauth serve --config /etc/realauth/realauth.toml
#
# The base image is pinned to an exact Python patch release and Debian release (same minor as CI's Python); pin it
# further to a digest with --build-arg PYTHON_IMAGE=python:3.11.14-slim-trixie@sha256:<digest> where required.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY clients ./clients
RUN python -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --quiet --upgrade pip \
 && /opt/venv/bin/python -m pip install --quiet . \
 && /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools

# The final stage gets the venv only: no pip, no setuptools, no compiler, no sources.
FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="realauth" \
      org.opencontainers.image.description="One vendor-neutral gRPC API for real-person (liveness) verification" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}" \
      org.opencontainers.image.documentation="docs/deployment.md"
RUN python -m pip uninstall --quiet --yes pip setuptools wheel \
 && groupadd --system --gid 10001 realauth \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/realauth --create-home realauth
COPY --from=build /opt/venv /opt/venv
# No .pyc writes: the root filesystem is read-only under Kubernetes (deploy/kubernetes).
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/realauth
# gRPC (the API, grpc.health.v1, reflection) and HTTP (landing, pushes, sandbox pages, /metrics, /healthz).
EXPOSE 50051 8080
# Liveness through the gRPC health service (service ""), the same check as the Kubernetes liveness probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["realauth", "health", "--port", "50051", "--timeout", "2"]
ENTRYPOINT ["realauth"]
CMD ["serve", "--store", "sqlite:////var/lib/realauth/realauth.db"]
