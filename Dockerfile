# An OpenEnv server for any aepo_envs id: docker build -t aepo-envs . &&
#   docker run --rm -p 8000:8000 -e AEPO_ENV_ID=AEPO/CalcQA-v0 aepo-envs
# The model's python runs in bubblewrap inside the container when the runtime allows user namespaces (e.g.
# `--security-opt seccomp=unconfined --security-opt apparmor=unconfined`, or rootless podman); otherwise the
# sandbox falls back to rlimits and the container is the isolation boundary: run it as here (unprivileged user),
# with `--cap-drop ALL --read-only --tmpfs /tmp --pids-limit 512 --memory 4g`, and `--network none` for the
# offline envs (CalcQA, SynthWiki, the math sets).
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY aepo_envs ./aepo_envs
COPY aepo_agent ./aepo_agent
COPY env_configs ./env_configs
# openenv pins mcp<2 (through fastmcp); the image serves OpenEnv only, so the mcp extra is left out.
RUN pip install --no-cache-dir ".[envs]" "openenv==0.10.0" "websockets>=17"

RUN useradd --create-home --uid 10001 aepo
USER aepo
ENV AEPO_ENV_ID=AEPO/CalcQA-v0 \
    AEPO_ENV_KWARGS={} \
    AEPO_MAX_SESSIONS=32 \
    AEPO_IDLE_TIMEOUT=300 \
    AEPO_CACHE_DIR=/home/aepo/.cache/aepo

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://localhost:8000/health || exit 1
CMD ["uvicorn", "aepo_envs.integrations.openenv:app", "--host", "0.0.0.0", "--port", "8000"]
