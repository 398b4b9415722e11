"""``aepo-envs serve``: OpenEnv's own ``EnvClient`` (async and ``.sync()``) plays real episodes over ``/ws``.

Runs in an interpreter with ``openenv`` (its fastmcp pins ``mcp<2``, so it has its own virtualenv); the server is
a real subprocess on 127.0.0.1, so its sandboxes and site servers are its own child processes and threads.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("openenv.core", reason="needs openenv==0.10.0; run with .venv-openenv/bin/python -m pytest")

from local_services import require_python_sandbox  # noqa: E402
from openenv.core.env_server.types import WSErrorCode  # noqa: E402
from openenv_server import descendants, port_open, served, wait_until  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402

from aepo_envs.envs.config import apply_overrides  # noqa: E402
from aepo_envs.integrations.openenv import AepoEnvClient, TextAction  # noqa: E402

CALC = {"world_kwargs": {"n_questions": 40}, "expose_answer": True, "tool_configs": {"python": {"prestart": 0}}}


@pytest.fixture(scope="module")
def calc_server():
    require_python_sandbox()
    with served(sys.executable, "AEPO/CalcQA-v0", CALC, max_sessions=32, idle_timeout=60) as server:
        yield server


async def _play_calc(url: str, index: int, correct: bool) -> tuple[float | None, bool, str]:
    """One CalcQA episode: a python call, then the gold answer (or a wrong one)."""
    async with AepoEnvClient(base_url=url, message_timeout_s=120) as client:
        first = await client.reset(index=index)
        gold = first.observation.info["answers"][0]
        assert first.observation.stop_strings == ["</python>", "</answer>"] and first.observation.tools
        tool = await client.step(TextAction(text="<python>print(6 * 7)</python>"))
        assert tool.observation.tool_status == "ok" and "42" in tool.observation.text and not tool.done
        answer = gold if correct else gold + "1"
        last = await client.step(TextAction(text=f"<answer>\\boxed{{{answer}}}</answer>"))
        assert last.done and last.observation.terminated and not last.observation.truncated
        return last.reward, last.done, first.observation.task_id or ""


def test_async_client_plays_calcqa_to_a_reward(calc_server) -> None:
    rewards = [asyncio.run(_play_calc(calc_server.url, 0, correct)) for correct in (True, False)]
    assert [r[0] for r in rewards] == [1.0, 0.0]

    async def state() -> None:
        async with AepoEnvClient(base_url=calc_server.url) as client:
            await client.reset(task_id=rewards[0][2])
            st = await client.state()
            assert st.env_id == "AEPO/CalcQA-v0" and st.task_id == rewards[0][2] and not st.done

    asyncio.run(state())


def test_sync_client_plays_synthwiki_episodes_to_a_reward(tmp_path: Path) -> None:
    pytest.importorskip("tantivy", reason="SynthWiki's search index needs tantivy (the 'tools' extra)")
    import gymnasium as gym

    from aepo_envs.worlds.oracle import OracleAgent

    wiki = {"world_kwargs": {"n_entities": 200, "n_questions": 20, "seed": 3, "cache_dir": str(tmp_path)}}
    local = gym.make("AEPO/SynthWiki-v0", **wiki)  # the same world: the task rows the oracle plays
    tasks = list(local.unwrapped.tasks[:2])
    local.close()
    with served(sys.executable, "AEPO/SynthWiki-v0", wiki) as server:
        client = AepoEnvClient(base_url=server.url, message_timeout_s=120).sync()
        with client:
            for task in tasks:
                result = client.reset(task_id=task.task_id)
                assert result.observation.task_id == task.task_id and not result.done
                agent, tools_used = OracleAgent(task), []
                while not result.done:
                    result = client.step(TextAction(text=agent.act(result.observation.text)))
                    tools_used.append(result.observation.info.get("tool_name"))
                assert result.observation.terminated and result.reward == 1.0, (task.task_id, result.observation)
                assert "search" in tools_used


def test_32_concurrent_sessions_all_finish_with_correct_rewards(calc_server) -> None:
    async def all_sessions() -> list[tuple[float | None, bool, str]]:
        return await asyncio.gather(*(_play_calc(calc_server.url, i, i % 2 == 0) for i in range(32)))

    results = asyncio.run(all_sessions())
    assert [r[0] for r in results] == [1.0 if i % 2 == 0 else 0.0 for i in range(32)]
    assert len({r[2] for r in results}) == 32  # 32 sessions, 32 different tasks
    wait_until(lambda: calc_server.sessions()["active"] == 0, 30, "the 32 sessions to close")


def test_capacity_error_is_an_openenv_error_frame(calc_server) -> None:
    held = [ws_connect(calc_server.url.replace("http", "ws") + "/ws", legacy=True) for _ in range(32)]
    try:
        wait_until(lambda: calc_server.sessions()["active"] == 32, 30, "32 open sessions")
        with ws_connect(calc_server.url.replace("http", "ws") + "/ws") as extra:
            frame = json.loads(extra.recv(timeout=30))
        assert frame["type"] == "error" and frame["data"]["code"] == WSErrorCode.CAPACITY_REACHED
        assert "32/32" in frame["data"]["message"] and "--max-sessions" in frame["data"]["message"]
    finally:
        for ws in held:
            ws.close()
    wait_until(lambda: calc_server.sessions()["active"] == 0, 30, "the held sessions to close")


def test_malformed_messages_get_error_frames_never_a_crash(calc_server) -> None:
    def ask(ws, payload: str) -> dict:
        ws.send(payload)
        return json.loads(ws.recv(timeout=30))

    with ws_connect(calc_server.url.replace("http", "ws") + "/ws") as ws:
        assert ask(ws, json.dumps({"type": "clone"}))["data"]["code"] == WSErrorCode.EXECUTION_ERROR  # no reset yet
        cases = [
            ("{not json", WSErrorCode.INVALID_JSON),
            (json.dumps({"type": "bogus"}), WSErrorCode.UNKNOWN_TYPE),
            (json.dumps([1, 2]), WSErrorCode.VALIDATION_ERROR),  # OpenEnv alone would drop the session
            (json.dumps({"type": "step", "data": {}}), WSErrorCode.VALIDATION_ERROR),
            (json.dumps({"type": "step", "data": {"text": 5}}), WSErrorCode.VALIDATION_ERROR),
            (json.dumps({"type": "step", "data": {"text": "<python>1</python>"}}), WSErrorCode.EXECUTION_ERROR),
            (json.dumps({"type": "reset", "data": {"colour": "red"}}), WSErrorCode.EXECUTION_ERROR),
            (json.dumps({"type": "reset", "data": {"index": 10**6}}), WSErrorCode.EXECUTION_ERROR),
            (json.dumps({"type": "end_episode", "data": {}}), WSErrorCode.VALIDATION_ERROR),
        ]
        for payload, code in cases:
            frame = ask(ws, payload)
            assert frame["type"] == "error", (payload, frame)
            if code is not None:
                assert frame["data"]["code"] == code, (payload, frame)
        assert "colour" in ask(ws, json.dumps({"type": "reset", "data": {"colour": "red"}}))["data"]["message"]
        ok = ask(ws, json.dumps({"type": "reset", "data": {"index": 0}}))  # the same socket still works
        assert ok["type"] == "observation" and ok["data"]["observation"]["task_id"]
        junk = ask(ws, json.dumps({"type": "step", "data": {"text": "\x00<python>unclosed"}}))
        assert junk["type"] == "observation", junk
        assert junk["data"]["observation"]["tool_status"] == "parse_error"
    with ws_connect(calc_server.url.replace("http", "ws") + "/ws?clone=nope") as ws:
        frame = json.loads(ws.recv(timeout=30))
        assert frame["type"] == "error" and "clone token" in frame["data"]["message"]
    assert calc_server.get("/health")["status"] == "healthy"


def test_health_schema_metadata_and_stateless_http(calc_server) -> None:
    schema = calc_server.get("/schema")
    assert schema["action"]["required"] == ["text"]
    fields = set(schema["observation"]["properties"])
    assert {"text", "messages", "tools", "stop_strings", "task_id", "tool_status", "terminated", "truncated",
            "reward_components", "reward", "done"} <= fields
    assert "env_id" in schema["state"]["properties"]
    meta = calc_server.get("/metadata")
    assert meta["name"] == "AEPO/CalcQA-v0" and "python" in meta["description"]
    import urllib.request

    request = urllib.request.Request(calc_server.url + "/reset", data=json.dumps({"index": 2}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert body["observation"]["task_id"] and body["done"] is False


def test_clone_message_branches_and_an_unclaimed_clone_expires() -> None:
    require_python_sandbox()
    with served(sys.executable, "AEPO/CalcQA-v0", CALC, max_sessions=4, idle_timeout=3) as server:
        ws_url = server.url.replace("http", "ws") + "/ws"
        with ws_connect(ws_url) as ws:
            ws.send(json.dumps({"type": "reset", "data": {"index": 3}}))
            gold = json.loads(ws.recv(timeout=30))["data"]["observation"]["info"]["answers"][0]
            ws.send(json.dumps({"type": "clone"}))
            token = json.loads(ws.recv(timeout=30))["data"]["token"]
            with ws_connect(f"{ws_url}?clone={token}") as branch:
                branch.send(json.dumps({"type": "step", "data": {"text": f"<answer>\\boxed{{{gold}}}</answer>"}}))
                assert json.loads(branch.recv(timeout=30))["data"]["reward"] == 1.0
            ws.send(json.dumps({"type": "step", "data": {"text": "<answer>\\boxed{-1}</answer>"}}))
            assert json.loads(ws.recv(timeout=30))["data"]["reward"] == 0.0  # the original was not affected
            ws.send(json.dumps({"type": "reset", "data": {"index": 3}}))
            ws.recv(timeout=30)
            ws.send(json.dumps({"type": "clone"}))
            json.loads(ws.recv(timeout=30))
            assert server.sessions() == {"active": 1, "max": 4, "pending_clones": 1}
            # Both idle now: the unclaimed clone expires and the session is closed with code 1001.
            wait_until(lambda: server.sessions() == {"active": 0, "max": 4, "pending_clones": 0}, 30,
                       "the unclaimed clone and the idle session to close")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert "idle" in closed.value.rcvd.reason


_VANISHING_CLIENT = textwrap.dedent("""
    import json, sys, time
    from websockets.sync.client import connect
    ws = connect(sys.argv[1])
    def ask(message):
        ws.send(json.dumps(message))
        return json.loads(ws.recv(timeout=60))
    ask({"type": "reset", "data": {"index": 0}})
    ask({"type": "step", "data": {"text": "<python>x = 1\\nprint(x)</python>"}})
    out = ask({"type": "step", "data": {"text": "<search>born</search>"}})["data"]["observation"]["text"]
    print(out.replace("\\n", " "), flush=True)
    time.sleep(3600)
""")


@pytest.mark.parametrize("how", ["sigstop", "sigkill"])
def test_a_vanished_client_leaves_no_env_sandbox_or_site_server(tmp_path: Path, how: str) -> None:
    require_python_sandbox()
    pytest.importorskip("tantivy", reason="SynthWiki's search index needs tantivy (the 'tools' extra)")
    wiki = {"world_kwargs": {"n_entities": 200, "n_questions": 20, "seed": 3, "cache_dir": str(tmp_path)},
            "tools": ["search", "browse", "python"], "tool_configs": {"python": {"prestart": 0}}}
    with served(sys.executable, "AEPO/SynthWiki-v0", wiki, max_sessions=2, idle_timeout=2) as server:
        assert descendants(server.proc.pid) == []
        client = subprocess.Popen([sys.executable, "-c", _VANISHING_CLIENT, server.url.replace("http", "ws") + "/ws"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = client.stdout.readline() if client.stdout else ""
            site = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            assert site, (line, client.stderr.read() if client.poll() is not None and client.stderr else "")
            assert server.sessions()["active"] == 1 and descendants(server.proc.pid)  # a live sandbox worker
            assert port_open(int(site.group(1)))  # the world's site server
            client.send_signal(signal.SIGSTOP if how == "sigstop" else signal.SIGKILL)
            wait_until(lambda: server.sessions()["active"] == 0, 30, "the abandoned session to close")
            wait_until(lambda: descendants(server.proc.pid) == [], 30, "the sandbox processes to exit")
            wait_until(lambda: not port_open(int(site.group(1))), 30, "the site server to stop")
            assert server.proc.poll() is None and server.get("/health")["status"] == "healthy"
        finally:
            client.kill()
            client.wait()


def test_serve_set_options_nest_dotted_keys_and_parse_yaml_values() -> None:
    assert apply_overrides({}, ["world_kwargs.seed=3", "world_kwargs.kinds=[product]", "max_turns=4", "name=x"]) == {
        "world_kwargs": {"seed": 3, "kinds": ["product"]}, "max_turns": 4, "name": "x"}
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["max_turns"])
