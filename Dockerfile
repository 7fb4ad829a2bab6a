# syntax=docker/dockerfile:1
# One image for all six services and the operator: `sukverse serve NAME`, `sukverse migrate
# NAME`, `sukverse operator`. Runs as uid 10001 with a read-only root filesystem; it writes
# only to /tmp (the embedded data directory is /tmp/sukverse unless SUKVERSE_DATA_DIR says
# otherwise).
#
# BASE must provide python3.11 at the same path in both stages; UV_IMAGE provides /uv.
# hack/image.sh builds this with a Debian base made by debootstrap instead.
ARG BASE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${BASE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON=python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/sukverse \
    UV_CACHE_DIR=/root/.cache/uv
WORKDIR /src
# The locked third-party packages first: this layer is reused until uv.lock or a
# pyproject.toml changes. A build machine behind its own certificate authority passes it
# as the secret `ca-certificates`; it never reaches a layer.
COPY pyproject.toml uv.lock ./
COPY services/common/pyproject.toml services/common/
COPY services/auth/pyproject.toml services/auth/
COPY services/user_mgmt/pyproject.toml services/user_mgmt/
COPY services/workshop/pyproject.toml services/workshop/
COPY services/quiz/pyproject.toml services/quiz/
COPY services/analytics/pyproject.toml services/analytics/
COPY services/certificate/pyproject.toml services/certificate/
COPY services/platform/pyproject.toml services/platform/
COPY operator/pyproject.toml operator/
RUN --mount=type=cache,id=sukverse-uv,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export SSL_CERT_FILE=/run/secrets/ca-certificates; fi \
    && uv sync --frozen --no-dev --all-packages --no-install-workspace
# Then the workspace's own packages, installed as wheels (not editable: /src stays behind).
COPY services/ services/
COPY operator/ operator/
RUN --mount=type=cache,id=sukverse-uv,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export SSL_CERT_FILE=/run/secrets/ca-certificates; fi \
    && uv sync --frozen --no-dev --all-packages --no-editable \
    && /opt/sukverse/bin/sukverse --help >/dev/null

FROM ${BASE}
# A base that ships pip (the python images do) loses it: nothing installs at run time.
RUN if python3 -m pip --version >/dev/null 2>&1; then \
        python3 -m pip uninstall --yes --quiet pip setuptools wheel; \
    fi \
    && groupadd --gid 10001 sukverse \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin sukverse
COPY --from=build /opt/sukverse /opt/sukverse
ENV PATH=/opt/sukverse/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    HOME=/tmp \
    SUKVERSE_HOST=0.0.0.0 \
    SUKVERSE_DATA_DIR=/tmp/sukverse
LABEL org.opencontainers.image.title="sukverse" \
      org.opencontainers.image.description="Sukverse: the six services (auth, user_mgmt, workshop, quiz, analytics, certificate) and the SukverseCohort operator" \
      org.opencontainers.image.vendor="Sukverse"
# auth, user_mgmt, workshop, quiz, analytics, certificate
EXPOSE 8000 8001 8002 8003 8004 8005
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["sukverse"]
CMD ["serve", "auth"]
