# realauth image. The install steps are the Makefile's (`make venv`): a venv, pip upgraded, the project installed
# from pyproject.toml — without the dev extras, and non-editable. The generated stubs are committed, so no codegen.
#   docker build -t realauth .
#   docker run -p 50051:50051 -p 8080:8080 realauth                      # sandbox mode
#   docker run -v $PWD/realauth.toml:/etc/realauth.toml realauth serve --config /etc/realauth.toml

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY clients ./clients
RUN python -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --quiet --upgrade pip \
 && /opt/venv/bin/python -m pip install --quiet .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/realauth --create-home realauth
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER realauth
WORKDIR /var/lib/realauth
EXPOSE 50051 8080
# gRPC health (grpc.health.v1) is on 50051; /healthz on 8080 is a plain HTTP liveness check.
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
ENTRYPOINT ["realauth"]
CMD ["serve", "--store", "sqlite:////var/lib/realauth/realauth.db"]
