# syntax=docker/dockerfile:1
# Eco-Pulse: one image for the webhook/extender and the rebalancer.
#   docker build -t eco-pulse:dev .
#   docker run --rm eco-pulse:dev            # eco-pulse webhook
#   docker run --rm eco-pulse:dev rebalancer # eco-pulse rebalancer (`python -m APP` works too)

# --- builder: wheels of the project and of every dependency -------------------------------
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY webhook ./webhook
COPY rebalancer ./rebalancer
COPY certs ./certs
COPY report ./report
COPY fleet ./fleet
COPY eco_pulse ./eco_pulse
COPY simulate ./simulate
# Our wheel first (no deps), then the wheels of its dependencies, resolved from that wheel
# file (not by name: a same-named package on PyPI must never win). All dependencies ship
# binary wheels for linux/amd64 and linux/arm64 (uvloop, httptools, orjson, cryptography,
# pydantic-core): no compiler needed.
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip wheel --wheel-dir /wheels /wheels/eco_pulse-*.whl

# --- runtime: the wheels installed, no build tools, non-root ---------------------------------
FROM python:3.11-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="eco-pulse" \
      org.opencontainers.image.description="Carbon- and cost-aware placement for Kubernetes: admission webhook, scheduler extender, rebalancer" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/eco-pulse/eco-pulse"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
# pip itself goes afterwards: nothing installs anything at run time.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels /wheels/eco_pulse-*.whl \
 && pip uninstall --yes pip setuptools wheel
# 65532: the conventional "nonroot" uid/gid (distroless); matches runAsUser in manifests/.
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["eco-pulse"]
CMD ["webhook"]
