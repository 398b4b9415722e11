"""``aepo-envs``: list envs, build/query search indexes, fetch the offline corpus, record WARC, serve tools over MCP or envs over OpenEnv."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="aepo-envs", description=__doc__)
    parser.add_argument(
        "command",
        choices=["list", "build-index", "query", "fetch-wiki", "record-warc", "mcp", "serve"],
        help="list: registered env ids; build-index/query/fetch-wiki: search back-end; record-warc: browse; mcp: serve an env's tools as an MCP server; serve: an env over the OpenEnv protocol (WebSocket /ws)",
    )
    args, rest = parser.parse_known_args(argv[:1])
    rest = argv[1:]
    if args.command == "list":
        import aepo_envs

        for env_id in aepo_envs.list_envs():
            print(env_id)
        return 0
    if args.command in ("build-index", "query", "fetch-wiki"):
        from aepo_envs.backends.search.cli import main as search_main

        return int(search_main([args.command, *rest]) or 0)
    if args.command == "mcp":
        from aepo_envs.integrations.mcp_server import main as mcp_main

        return mcp_main(rest)
    if args.command == "serve":
        import aepo_envs  # noqa: F401  (registers the env ids)
        from aepo_envs.integrations.openenv import main as serve_main

        return serve_main(rest)
    from aepo_envs.backends.browse.warc import main as warc_main

    return int(warc_main(["record", *rest]) or 0)


if __name__ == "__main__":
    sys.exit(main())
