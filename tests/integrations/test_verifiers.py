"""verifiers 0.4.0 (v1 API) plays aepo envs through its own eval runner, in its own virtualenv.

The verifiers side runs in ``$AEPO_VERIFIERS_PYTHON`` (default ``.venv-verifiers``, built by
``scripts/setup_verifiers.sh``); the OpenAI-compatible servers run here on 127.0.0.1: a scripted one whose replies
are known (so the reward is asserted exactly), and vLLM's server on SmolLM2 where ``.venv-vllm`` exists.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from json_http import JSONHandler
from local_services import VLLM_SKIP, free_port, vllm_openai_server

import aepo_envs  # noqa: F401  (registers the ids)
from aepo_envs import env_stop_strings, env_tasks

REPO = Path(__file__).resolve().parents[2]
CALC = {"world_kwargs": {"n_questions": 2, "levels": [1]}}


def _interpreter(variable: str, venv: str) -> str | None:
    """``$variable`` or the repository's ``venv`` interpreter, when it exists."""
    for candidate in (os.environ.get(variable), str(REPO / venv / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def vf_python() -> str:
    python = _interpreter("AEPO_VERIFIERS_PYTHON", ".venv-verifiers")
    if python is None:
        pytest.skip("no interpreter with verifiers 0.4.0: run `bash scripts/setup_verifiers.sh` (.venv-verifiers) "
                    "or set AEPO_VERIFIERS_PYTHON")
    return python


def _run(python: str, *argv: str, timeout: float = 240) -> str:
    """Run ``python *argv`` from the repository root; its stdout (a failure shows its stderr)."""
    done = subprocess.run([python, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr[-4000:]}"
    return done.stdout


def _evaluate(python: str, out: Path, timeout: float = 240, **kwargs: Any) -> list[dict[str, Any]]:
    """verifiers' eval runner on ``kwargs`` (``evaluate``'s); the episode records of its ``traces.jsonl``."""
    code = "import json, sys\nfrom aepo_envs.integrations.verifiers import evaluate\nevaluate(**json.loads(sys.argv[1]))"
    _run(python, "-c", code, json.dumps({**kwargs, "output_dir": str(out)}), timeout=timeout)
    return _episodes(out)


def _episodes(out: Path) -> list[dict[str, Any]]:
    """The episode records of the one run's ``traces.jsonl`` under ``out``."""
    [traces] = list(out.glob("*/traces.jsonl"))
    return [json.loads(line) for line in traces.read_text().splitlines()]


def test_aepo_envs_never_imports_verifiers() -> None:
    code = ("import sys, aepo_envs, aepo_envs.integrations\n"
            "assert 'verifiers' not in sys.modules, 'aepo_envs imported verifiers'\n"
            "try:\n    import aepo_envs.integrations.verifiers\nexcept ImportError as e:\n    print(e)\n")
    out = _run(sys.executable, "-c", code)
    if importlib.util.find_spec("verifiers") is None:  # this interpreter lacks it: the error names the fix
        assert "setup_verifiers.sh" in out


_PLUGIN = """
import json, gymnasium as gym
import verifiers.v1 as vf
import aepo_envs.integrations.verifiers as avf
taskset = vf.load_taskset(avf.AepoTasksetConfig(id=avf.TASKSET_ID, env_id="AEPO/CalcQA-v0",
                                                env_kwargs={"world_kwargs": {"n_questions": 2}}))
env = avf.load_environment("AEPO/CalcQA-v0", {"player": {"max_turns": 3}}, max_turns=4)
try:
    avf.load_environment("AEPO/NoSuchEnv-v0")
    unknown = None
except gym.error.NameNotFound as e:
    unknown = str(e)
stops = ["</python>", "</answer>"]
print(json.dumps({
    "taskset": type(taskset).__name__, "env": type(env).__name__, "env_taskset": type(env.taskset).__name__,
    "runtime": env.config.player.runtime.type, "harness": vf.default_harness_id(avf.TASKSET_ID),
    "limits": [env.config.player.max_turns, env.config.taskset.env_kwargs],
    "tasks": [t.data.model_dump(mode="json") | {"key": t.key} for t in taskset], "unknown": unknown,
    "restored": [avf.restore_stop(t, stops, f) for t, f in [
        ("<python>print(1)", "stop"), ("<python>print(1)</python>", "stop"), ("<answer>\\\\boxed{2}", "stop"),
        ("<python>x</python> then <answer>\\\\boxed{3}", "stop"), ("<python>print(1)", "length"),
        ("no tags at all", "stop")]],
}))
"""


def test_plugin_resolves_by_id_with_subprocess_runtime_and_restores_stops(vf_python: str) -> None:
    got = json.loads(_run(vf_python, "-c", _PLUGIN).splitlines()[-1])
    assert (got["taskset"], got["env"], got["env_taskset"]) == ("AepoTaskset", "AepoEnv", "AepoTaskset")
    assert got["runtime"] == "subprocess" and got["harness"] == "aepo-verifiers"
    assert got["limits"] == [3, {"max_turns": 4}]  # the seat keeps its subprocess runtime under overrides
    assert "AEPO/NoSuchEnv-v0" in got["unknown"] and "list_envs" in got["unknown"]
    env = gym.make("AEPO/CalcQA-v0", world_kwargs={"n_questions": 2})
    try:
        rows, stops = env_tasks(env), list(env_stop_strings(env))
        _, info = env.reset(options={"index": 0})
    finally:
        env.close()
    assert [t["task_id"] for t in got["tasks"]] == [r.task_id for r in rows]
    first = got["tasks"][0]
    assert first["answers"] == list(rows[0].answers) and first["stop_strings"] == stops
    assert first["key"] == f"AEPO/CalcQA-v0/{rows[0].task_id}"
    assert (first["system_prompt"], first["prompt"]) == (info["messages"][0]["content"], info["messages"][1]["content"])
    assert got["restored"] == ["<python>print(1)</python>", "<python>print(1)</python>", "<answer>\\boxed{2}</answer>",
                               "<python>x</python> then <answer>\\boxed{3}</answer>", "<python>print(1)",
                               "no tags at all"]


class _ScriptedChat(JSONHandler):
    """An OpenAI chat server that strips stop strings: the task's python call, then the value the sandbox printed
    as the answer; for the task in ``server.garbage``, a tagless reply, then a wrong answer (stop string kept)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.read_json()
        server: ChatServer = self.server  # type: ignore[assignment]
        server.requests.append((self.path, body))
        question = next(m["content"] for m in body["messages"] if m["role"] == "user")
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        last = body["messages"][-1]["content"]
        if question == server.garbage:
            text = "Let me think about it." if turn == 0 else "<answer>\\boxed{0}</answer>"
        elif turn == 0:
            text = f"<python>{server.code[question]}"
        else:
            value = re.search(r"RESULT (\S+)", last)
            text = f"<answer>The answer is \\boxed{{{value.group(1) if value else '?'}}}"
        self.send_json(200, {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": text}}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, code: dict[str, str], garbage: str) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedChat)
        self.code, self.garbage = code, garbage
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    env = gym.make("AEPO/CalcQA-v0", **CALC)
    try:
        rows = env_tasks(env)
    finally:
        env.close()
    server = ChatServer({r.question: r.meta["derivation"][0]["code"] for r in rows}, garbage=rows[1].question)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_example_with_scripted_model_records_our_reward_in_verifiers_traces(
        vf_python: str, chat_server: ChatServer, tmp_path: Path) -> None:
    printed = _run(vf_python, str(REPO / "examples" / "verifiers_eval.py"), "--env", "AEPO/CalcQA-v0",
                   "--env-kwargs", json.dumps(CALC), "--base-url", chat_server.url, "--model", "scripted",
                   "--limit", "2", "--temperature", "0", "--max-tokens", "64", "--output-dir", str(tmp_path))
    assert "mean reward 0.500 over 2 episodes" in printed
    by_task = {e["task"]["data"]["task_id"]: e for e in _episodes(tmp_path)}
    env = gym.make("AEPO/CalcQA-v0", **CALC)
    try:
        rows = env_tasks(env)
    finally:
        env.close()
    solved, garbage = by_task[rows[0].task_id], by_task[rows[1].task_id]
    for episode in (solved, garbage):
        assert episode["ok"] and not episode["errors"]
        [trace] = episode["traces"]
        assert trace["agent"]["runtime"]["type"] == "subprocess"
        assert [c["finish_reason"] for c in trace["calls"]] == ["stop", "stop"]
    [trace] = solved["traces"]
    # The answer is the value the sandbox printed (the server copies it from the tool result): the tool ran.
    assert trace["rewards"]["aepo_reward"]["score"] == 1.0
    assert trace["info"]["aepo"] == {"env_id": "AEPO/CalcQA-v0", "task_id": rows[0].task_id,
                                         "final_answer": rows[0].answers[0], "num_tool_calls": 1,
                                         "truncation_reason": None}
    assert any(k.startswith("aepo/") for k in trace["metrics"])
    [trace] = garbage["traces"]
    assert trace["rewards"]["aepo_reward"]["score"] == 0.0 and trace["info"]["aepo"]["final_answer"] == "0"
    # Every call went through the interception to our server, with the env's stop strings and the run's sampling.
    assert len(chat_server.requests) == 4
    for path, body in chat_server.requests:
        assert path == "/v1/chat/completions" and body["model"] == "scripted"
        assert (body["stop"], body["max_tokens"], body["temperature"]) == (["</python>", "</answer>"], 64, 0.0)
    second_turns = {b["messages"][1]["content"]: b["messages"][-1]["content"]
                    for _, b in chat_server.requests if len(b["messages"]) > 2}
    assert "RESULT" in second_turns[rows[0].question] and "<result>" in second_turns[rows[0].question]
    assert "Invalid action" in second_turns[rows[1].question]  # the tagless reply got the env's feedback


def test_agent_limit_and_dead_endpoint_end_episodes_cleanly(
        vf_python: str, chat_server: ChatServer, tmp_path: Path) -> None:
    # verifiers' own turn limit stops the agent after its tool call: our env scores the episode as ended outside.
    [limited] = _evaluate(vf_python, tmp_path / "limited", env_id="AEPO/CalcQA-v0", base_url=chat_server.url,
                          model="scripted", env_kwargs=CALC, limit=1, player={"max_turns": 1})
    [trace] = limited["traces"]
    assert len(chat_server.requests) == 1 and trace["stop_condition"] == "max_turns"
    assert trace["rewards"]["aepo_reward"]["score"] == 0.0
    assert trace["info"]["aepo"]["truncation_reason"] == "agent_stopped"
    # Nothing listens: the run fails with the connection error on the trace and no reward, instead of hanging.
    dead = f"http://127.0.0.1:{free_port()}/v1"
    [failed] = _evaluate(vf_python, tmp_path / "dead", env_id="AEPO/CalcQA-v0", base_url=dead, model="m",
                         env_kwargs=CALC, limit=1)
    [trace] = failed["traces"]
    assert not failed["ok"] and trace["errors"] and trace["rewards"] == {"aepo_reward": None}


# ------------------------------------------------------------------------------------------ real vLLM server
@pytest.fixture(scope="module")
def vllm_url(vf_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's OpenAI server on SmolLM2 (CPU, fp32), stopped with its engine process afterwards."""
    python = _interpreter("AEPO_VLLM_PYTHON", ".venv-vllm")
    if python is None:
        pytest.skip(VLLM_SKIP)
    from aepo_agent.models import cached_model_path, default_cache_dir

    model = cached_model_path("smollm2-135m-instruct")
    if model is None:
        pytest.skip(f"SmolLM2 is not in {default_cache_dir()}; run `aepo models fetch smollm2-135m-instruct`")
    with vllm_openai_server(python, model, tmp_path_factory.mktemp("vllm_server") / "server.log") as url:
        yield f"{url}/v1"


@pytest.mark.slow
def test_smollm_on_vllm_server_episode_records_reward(vf_python: str, vllm_url: str, tmp_path: Path) -> None:
    kwargs = {"world_kwargs": {"n_questions": 1, "levels": [1]}, "max_turns": 1}
    [episode] = _evaluate(vf_python, tmp_path, env_id="AEPO/CalcQA-v0", base_url=vllm_url, model="smollm",
                          env_kwargs=kwargs, limit=1, sampling={"max_tokens": 48, "temperature": 0.0}, timeout=400)
    assert episode["ok"] and not episode["errors"], episode["errors"]
    [trace] = episode["traces"]
    assert trace["agent"]["runtime"]["type"] == "subprocess" and trace["agent"]["config"]["model"] == "smollm"
    [call] = trace["calls"]  # our env truncates after its one turn
    assert call["finish_reason"] in ("stop", "length") and call["sampling"]["stop"] == ["</python>", "</answer>"]
    assert call["usage"]["completion_tokens"] > 0  # SmolLM2 really generated
    assert trace["rewards"]["aepo_reward"]["score"] in (0.0, 1.0)  # our env scored the episode (usually 0)
    aepo = trace["info"]["aepo"]
    assert aepo["task_id"] == episode["task"]["data"]["task_id"]
    assert aepo["final_answer"] is not None or aepo["truncation_reason"] == "max_turns"
