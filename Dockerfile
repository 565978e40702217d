# anthropic-router: docker build -t anthropic-router .
# Configuration is the same environment variables as everywhere else (docker run -e ..., --env-file,
# compose `environment:`); see docs/deploy.md.

# --- build: a virtual environment holding the router and its dependencies --------------------------------
FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/anthropic-router
COPY pyproject.toml README.md ./
COPY router/ router/
RUN /opt/anthropic-router/bin/pip install ".[speed]"

# --- runtime: the same base, the virtual environment, an unprivileged user -------------------------------
FROM python:3.12-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin router \
    && mkdir /data && chown router:router /data
COPY --from=build /opt/anthropic-router /opt/anthropic-router
# Only what differs from the router's own defaults (the seed's: PORT 3456, VLLM_URL http://localhost:8000,
# ...) is set here, so a mounted /data/.env can still set everything else.
ENV PATH=/opt/anthropic-router/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=3456
# Writable by the router user: TELEMETRY_FILE=/data/usage.jsonl survives restarts on a volume.
WORKDIR /data
USER 10001:10001
EXPOSE 3456
# /health is 200 once vLLM answers, 503 while it loads or is down; the start period covers a model load.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3456') + '/health', timeout=4)"]
ENTRYPOINT ["anthropic-router"]
