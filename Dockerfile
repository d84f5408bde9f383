# syntax=docker/dockerfile:1
# sessiond: `docker build -t sessiond .` then `docker run -p 8000:8000 sessiond`
# (serve; the relay worker is the same image with the command `sessiond-relay`).
# Pin the base image by digest in your registry mirror for reproducible builds.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- builder: the sessiond wheel and a wheel of every dependency ------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --wheel-dir /wheels '.[server]'

# --- final: a venv with the wheels, no compilers, no pip, a non-root user ---------------------
FROM ${PYTHON_IMAGE} AS final
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    SESSIOND_HOST=0.0.0.0 \
    SESSIOND_PORT=8000
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels 'sessiond[server]' \
    && /opt/venv/bin/pip uninstall -y pip \
    && groupadd --system --gid 10001 sessiond \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin sessiond
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
ENTRYPOINT ["sessiond"]
CMD ["serve"]
