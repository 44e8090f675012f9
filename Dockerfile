# The one image of the operator, the workers and the Job pods (charts/noetl).
#   docker build -t REGISTRY/noetl:0.1.0 .
# Entry point `noetl`: the chart runs `noetl operator`, `noetl worker`; Job pods `noetl worker --job`.

# Build stage: a wheel of this package (no compilers needed: every dependency ships wheels).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY noetl ./noetl
COPY noetl_operator ./noetl_operator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Runtime stage: the package with its Kubernetes extras, and nothing of the build.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/noetl_k8s-*.whl)[k8s]" \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 noetl \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/noetl --create-home --shell /usr/sbin/nologin noetl
# A numeric USER lets Kubernetes verify runAsNonRoot without a runAsUser in the pod spec.
USER 10001:10001
WORKDIR /home/noetl
ENTRYPOINT ["noetl"]
CMD ["--help"]
