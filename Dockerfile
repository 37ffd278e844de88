# Two images from one file:
#   docker build --target app     -t diffwatch:latest         .   # dashboard + collectors (no torch)
#   docker build --target scoring -t diffwatch-scoring:latest .   # GPU scoring workers (CUDA, torch)
#
# Both run `diffwatch` as a non-root user (uid 10001) with DIFFWATCH_HOME=/var/lib/diffwatch
# as a volume. Point them at PostgreSQL with DIFFWATCH_DATABASE_URL; see docs/deployment.md.

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04
ARG UV_VERSION=0.8.14

# --- app: build a virtualenv with the core install plus the dashboard extra ---------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS app-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
# Metadata first: the dependency layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
# The dependency list of the core install plus the app extra, read from pyproject.toml.
RUN /opt/venv/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["app"]))' \
      > /tmp/requirements.txt
RUN /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt
COPY . .
# Non-editable, without re-resolving: the dependencies are already in place. The checks
# run from / so that they import the installed package, not the source tree.
RUN /opt/venv/bin/pip install --no-deps '.[app]' \
 && cd / \
 && /opt/venv/bin/diffwatch --help > /dev/null \
 && /opt/venv/bin/python -c "import db.migrate, collectors.logs.collector" \
 && if /opt/venv/bin/python -c "import torch" 2>/dev/null; then \
      echo "torch must not be in the app image" >&2; exit 1; fi

# --- app: the runtime image ---------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS app
LABEL org.opencontainers.image.title="diffwatch" \
      org.opencontainers.image.description="diffwatch dashboard and collectors" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 diffwatch \
 && useradd --system --uid 10001 --gid diffwatch --home-dir /var/lib/diffwatch \
      --shell /usr/sbin/nologin diffwatch \
 && install -d -o diffwatch -g diffwatch -m 0750 /var/lib/diffwatch
COPY --from=app-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DIFFWATCH_HOME=/var/lib/diffwatch \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
VOLUME ["/var/lib/diffwatch"]
WORKDIR /var/lib/diffwatch
USER diffwatch:diffwatch
EXPOSE 8501
ENTRYPOINT ["diffwatch"]
CMD ["--help"]

# --- scoring: CUDA runtime + a uv-managed Python 3.11 + every extra ---------------------
FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM ${CUDA_IMAGE} AS scoring-build
ARG PYTHON_VERSION
COPY --from=uv /uv /usr/local/bin/uv
# The CUDA images are Ubuntu, whose Python is not 3.11: uv installs a standalone 3.11 at a
# fixed path that the runtime stage copies as is.
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
RUN uv python install ${PYTHON_VERSION} \
 && uv venv --python ${PYTHON_VERSION} /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
RUN /opt/venv/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; x = p["optional-dependencies"]; print("\n".join(p["dependencies"] + x["app"] + x["scoring"]))' \
      > /tmp/requirements.txt
# PyPI's Linux torch wheels are CUDA builds that bring their own CUDA libraries.
RUN uv pip install --python /opt/venv/bin/python -r /tmp/requirements.txt
COPY . .
RUN uv pip install --python /opt/venv/bin/python --no-deps '.[all]' \
 && cd / \
 && /opt/venv/bin/diffwatch --help > /dev/null \
 && /opt/venv/bin/python -c "import db.migrate, torch, open_clip, diffusers, nudenet"

FROM ${CUDA_IMAGE} AS scoring
LABEL org.opencontainers.image.title="diffwatch-scoring" \
      org.opencontainers.image.description="diffwatch GPU scoring workers" \
      org.opencontainers.image.licenses="Apache-2.0"
# libgl1/libglib2.0-0: OpenCV (NudeNet uses it) needs them at import time in some builds.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 diffwatch \
 && useradd --system --uid 10001 --gid diffwatch --home-dir /var/lib/diffwatch \
      --shell /usr/sbin/nologin diffwatch \
 && install -d -o diffwatch -g diffwatch -m 0750 /var/lib/diffwatch
COPY --from=scoring-build /opt/python /opt/python
COPY --from=scoring-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DIFFWATCH_HOME=/var/lib/diffwatch \
    HF_HOME=/var/lib/diffwatch/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
VOLUME ["/var/lib/diffwatch"]
WORKDIR /var/lib/diffwatch
USER diffwatch:diffwatch
ENTRYPOINT ["diffwatch"]
CMD ["--help"]
