"""``aepo-envs mcp``: the official MCP client lists and calls an env's real tools over stdio and HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from local_services import free_port, require_python_sandbox

pytest.importorskip(
    "mcp", reason="the MCP server needs the official SDK: pip install 'mcp>=2.3' (the 'mcp' extra)"
)

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

CALC = {"world_kwargs": {"n_questions": 3}, "tool_configs": {"python": {"timeout_s": 3}}}
SMALL_WIKI = {"n_entities": 200, "n_questions": 90, "seed": 3}


def _args(env_id: str, kwargs: dict[str, object], *extra: str) -> list[str]:
    return ["-m", "aepo_envs.cli", "mcp", env_id, "--env-kwargs", json.dumps(kwargs), *extra]


@asynccontextmanager
async def _stdio(env_id: str, kwargs: dict[str, object]) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable, args=_args(env_id, kwargs), env=dict(os.environ))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def test_stdio_lists_and_runs_python_and_survives_hostile_code() -> None:
    require_python_sandbox()

    async def go() -> None:
        async with _stdio("AEPO/CalcQA-v0", CALC) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert "python" in tools and tools["python"].input_schema["required"] == ["code"]
            assert "code" in tools["python"].input_schema["properties"]
            ok = await session.call_tool("python", {"code": "print(2**10)"})
            assert not ok.is_error and "1024" in ok.content[0].text
            shadow = await session.call_tool("python", {"code": "print(open('/etc/shadow').read())"})
            assert "PermissionError" in shadow.content[0].text or "No such file" in shadow.content[0].text
            spin = await session.call_tool("python", {"code": "while True: pass"})
            assert spin.is_error and spin.content[0].text  # the sandbox's timeout answer, marked as an error
            unknown = await session.call_tool("nope", {})
            assert unknown.is_error and "python" in unknown.content[0].text
            again = await session.call_tool("python", {"code": "print(6*7)"})
            assert not again.is_error and "42" in again.content[0].text

    anyio.run(go)


def test_stdio_search_over_synthwiki(tmp_path: Path) -> None:
    pytest.importorskip("tantivy", reason="SynthWiki's search index needs tantivy (the 'tools' extra)")
    pytest.importorskip("trafilatura", reason="the browse tool needs trafilatura (the 'tools' extra)")
    kwargs = {"world_kwargs": {**SMALL_WIKI, "cache_dir": str(tmp_path)}}

    async def go() -> None:
        async with _stdio("AEPO/SynthWiki-v0", kwargs) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            assert {"search", "browse"} <= names
            hits = await session.call_tool("search", {"query": "born"})
            assert not hits.is_error and "http" in hits.content[0].text

    anyio.run(go)


def test_streamable_http_on_localhost() -> None:
    require_python_sandbox()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *_args("AEPO/CalcQA-v0", CALC, "--transport", "http", "--port", str(port))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "HTTP server did not start"
                time.sleep(0.1)

        async def go() -> None:
            url = f"http://127.0.0.1:{port}/mcp"
            async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                assert "python" in {t.name for t in (await session.list_tools()).tools}
                out = await session.call_tool("python", {"code": "print(2**10)"})
                assert not out.is_error and "1024" in out.content[0].text

        anyio.run(go)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
