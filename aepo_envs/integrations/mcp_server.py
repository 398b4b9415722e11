"""Serve an env's real tools (python, search, browse) over MCP with the official ``mcp`` SDK (2.x)."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import gymnasium as gym
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from aepo_envs.tools.base import Tool, ToolStatus


def build_server(tools: Mapping[str, Tool], name: str = "aepo-envs") -> Server[Any]:
    """One MCP tool per env tool; its JSON schema is the input schema, non-ok statuses are ``isError``."""
    listing = [
        types.Tool(name=t.name, description=t.description, input_schema=dict(t.parameters))
        for t in tools.values()
    ]
    # One call at a time per tool: a python tool keeps one sandbox session, which concurrent clients must not
    # interleave; different tools still run side by side.
    locks = {name: threading.Lock() for name in tools}

    def run(name: str, args: dict[str, Any]) -> Any:
        with locks[name]:
            return tools[name](args)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            text, is_error = f"unknown tool {params.name!r}; available: {', '.join(tools)}", True
        else:  # tools block (sandbox, HTTP): keep the event loop free
            result = await anyio.to_thread.run_sync(run, params.name, dict(params.arguments or {}))
            text, is_error = result.text, result.status != ToolStatus.OK
        return types.CallToolResult(content=[types.TextContent(text=text)], is_error=is_error)

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


@asynccontextmanager
async def _env_tools(env_id: str, env_kwargs: Mapping[str, Any]) -> AsyncIterator[Mapping[str, Tool]]:
    """Make the env, yield its tools, close it (sandboxes, world servers) on exit."""
    env = gym.make(env_id, **env_kwargs)
    try:
        yield env.get_wrapper_attr("tools")
    finally:
        env.close()


async def serve(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve ``env_id``'s tools over stdio or streamable HTTP until the client/server stops."""
    async with _env_tools(env_id, env_kwargs or {}) as tools:
        server = build_server(tools, name=f"aepo-envs:{env_id}")
        if transport == "stdio":
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
            return
        if transport != "http":
            raise ValueError(f"unknown transport {transport!r}; use 'stdio' or 'http'")
        import uvicorn

        app = server.streamable_http_app(host=host)
        await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()


def main(argv: list[str]) -> int:
    """``aepo-envs mcp ID [--transport stdio|http] [--host H --port N] [--env-kwargs JSON]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="aepo-envs mcp", description=__doc__)
    parser.add_argument("env_id", help="registered env id, e.g. AEPO/CalcQA-v0")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--env-kwargs", default="{}", help="JSON kwargs for gym.make, e.g. '{\"world_kwargs\": {...}}'"
    )
    args = parser.parse_args(argv)
    env_kwargs = json.loads(args.env_kwargs)
    if not isinstance(env_kwargs, dict):
        parser.error("--env-kwargs must be a JSON object")
    import aepo_envs  # noqa: F401  (registers the env ids)

    anyio.run(serve, args.env_id, env_kwargs, args.transport, args.host, args.port)
    return 0
