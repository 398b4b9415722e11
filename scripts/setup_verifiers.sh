#!/usr/bin/env bash
# Build .venv-verifiers: verifiers==0.4.0 (the v1 API that aepo_envs.integrations.verifiers plugs into) with
# aepo's env extras. verifiers pins mcp==2.0.0 and openai 2.x, which conflict with .venv (mcp>=2.3) and
# .venv-vllm (openai 3.x), so it gets its own virtualenv; no torch. Tests in .venv reach it through
# $AEPO_VERIFIERS_PYTHON (default .venv-verifiers/bin/python). Idempotent: skips a venv that already imports both.
# AEPO_VERIFIERS_VENV=DIR builds it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${AEPO_VERIFIERS_VENV:-.venv-verifiers}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import verifiers.v1, aepo_envs, openai" 2>/dev/null; then
  echo "verifiers is installed in $VENV"
  exit 0
fi
$PY -m venv "$VENV"
VPIP="$VENV/bin/python -m pip"
$VPIP install -q --upgrade pip
$VPIP install -q "verifiers==0.4.0" -e ".[envs]"
"$VENV/bin/python" -c "import verifiers.v1, aepo_envs.integrations.verifiers"
echo "verifiers is installed in $VENV"
