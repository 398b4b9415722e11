"""The examples run as documented: the OpenAI-compatible agent loop (against a local chat server), the scripted
offline agent, and the new-tool env in well under 100 lines."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import gymnasium as gym
from json_http import JSONHandler

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples"))


class _ChatHandler(JSONHandler):
    """A chat-completions server that plays CalcQA: first a python call, then the answer it read."""

    def do_POST(self):  # noqa: N802
        body = self.read_json()
        self.server.requests.append(body)
        messages = body["messages"]
        last = messages[-1]["content"]
        if messages[-1]["role"] == "user" and "<result>" in last:
            value = last.split("<result>")[1].split("</result>")[0].strip()
            content, stop = f"<answer>\\boxed{{{value}}}</answer>", None
        else:
            question = messages[-1]["content"]
            a, b = [int(x) for x in re.findall(r"\d+", question)][:2]
            content, stop = f"<python>print({a} * {b})", "</python>"  # the server strips the stop string
        reply = {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                              "stop_reason": stop}]}
        self.send_json(200, reply)



def test_openai_agent_plays_an_episode():
    import openai_agent

    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = gym.make("AEPO/CalcQA-v0", world_kwargs={"kinds": ["product"], "n_questions": 5})
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        reward = openai_agent.play(env, url, "test-model", None, index=0)
    finally:
        env.close()
        server.shutdown()
        server.server_close()
    assert reward == 1.0
    assert server.requests[0]["stop"] == ["</python>", "</answer>"]
    assert server.requests[1]["messages"][-2]["content"].endswith("</python>")  # stop string restored


def test_scripted_agent_solves_offline_worlds():
    out = subprocess.run([sys.executable, str(REPO / "examples" / "scripted_agent.py"), "--episodes", "2"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "AEPO/SynthWiki-v0: solved 2/2" in out.stdout
    assert "AEPO/CalcQA-v0: solved 2/2" in out.stdout


def test_new_tool_env_example_is_short_and_works():
    path = REPO / "examples" / "new_tool_env.py"
    assert len(path.read_text().splitlines()) < 100
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "reward=1.0 terminated=True" in out.stdout
