# syntax=docker/dockerfile:1
# The operator image: small (python slim, no build tools in the final stage), non-root (65532),
# reproducible (every runtime dependency pinned in deploy/requirements.lock and installed with
# --no-deps, so nothing is resolved at build time; regenerate with deploy/update-lock).
# The base is pinned by tag; to pin by digest too, resolve it where you build and replace the tag:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   ->   python:3.11-slim-bookworm@sha256:...
#
#   docker build -t cloudeye-operator:0.1.0 .
#   docker run --rm cloudeye-operator:0.1.0 --help
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/cloudeye
COPY deploy/requirements.lock /tmp/requirements.lock
RUN /opt/cloudeye/bin/pip install --no-deps -r /tmp/requirements.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/cloudeye/bin/pip install --no-deps . \
 && /opt/cloudeye/bin/pip check \
 && /opt/cloudeye/bin/python -m compileall -q /opt/cloudeye/lib \
 && /opt/cloudeye/bin/pip uninstall -y pip

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="cloudeye-operator" \
      org.opencontainers.image.description="Rolls the Huawei Cloud Eye agent out to fleets of servers from Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/cloudeye /opt/cloudeye
ENV PATH=/opt/cloudeye/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532: the conventional "nonroot" uid/gid; no home, no shell needed. The root filesystem can be
# read-only (the Deployment mounts an emptyDir at /tmp).
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["cloudeye-operator", "run"]
