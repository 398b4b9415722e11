"""Runs the OpenEnv server tests (OpenEnv's own client, in the interpreter that has openenv) from the main suite.

openenv pins ``mcp<2`` and the MCP server needs ``mcp>=2.3``, so ``test_openenv_server.py`` runs under
``$AEPO_OPENENV_PYTHON`` / ``.venv-openenv``; this test is how ``.venv/bin/python -m pytest`` covers it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
from openenv_server import openenv_python

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(importlib.util.find_spec("openenv") is not None,
                    reason="this interpreter has openenv: test_openenv_server.py runs here directly")
def test_openenv_server_suite_passes_in_the_openenv_interpreter() -> None:
    python = openenv_python()
    if python is None:
        pytest.skip("no interpreter with openenv==0.10.0: AEPO_SETUP_OPENENV=1 bash scripts/setup.sh builds .venv-openenv")
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "tests/integrations/test_openenv_server.py")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " skipped" not in proc.stdout.splitlines()[-1], tail
