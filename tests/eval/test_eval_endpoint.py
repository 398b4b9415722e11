"""An OpenAI-compatible endpoint through run_eval: failed requests become per-sample error records (retried with
backoff by the engine), the evaluation finishes; a refused endpoint (404) stops it with the engine's message."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from char_tokenizer import CharTokenizer
from eval_toys import TOY_ID
from json_http import JSONHandler

from aepo_agent.eval import BenchmarkSpec, EvalSettings, run_eval
from aepo_agent.eval.runner import records_path

openai_engine = pytest.importorskip("aepo_agent.engines.openai_engine")
TOK = CharTokenizer()


class _Handler(JSONHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.read_json()
        self.server.bodies.append(body)
        prompt = TOK.decode(body["prompt"])
        if self.server.status != 200:
            status, payload = self.server.status, {"error": "no such model"}
        elif "Q1" in prompt:
            status, payload = 503, {"error": "overloaded"}
        else:
            text = "<answer>\\boxed{yes}</answer>"
            choice = {"text": text, "finish_reason": "stop", "stop_reason": "</answer>"}
            status, payload = 200, {"choices": [dict(choice, index=i) for i in range(body["n"])]}
        self.send_json(status, payload)



@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.bodies, srv.status, srv.daemon_threads = [], 200, True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _engine(srv):
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    return openai_engine.OpenAIEngine(url, "served", TOK, max_retries=1, backoff_s=0.01)


def test_endpoint_errors_are_per_sample_and_the_run_finishes(tmp_path: Path, server) -> None:
    engine = _engine(server)
    out = tmp_path / "ev"
    settings = EvalSettings(n=2, k=(1, 2), limit=3, tool_budgets=None)
    try:
        report = run_eval(engine, TOK, [BenchmarkSpec(TOY_ID)], settings, output_dir=out, progress=False,
                          model_label="openai:fake#served")
    finally:
        engine.close()
    records = [json.loads(line) for line in records_path(out, TOY_ID).read_text().splitlines()]
    failed = sorted((r["task_id"], r["run"]) for r in records if r["error"])
    assert failed == [("t1", 0), ("t1", 1)]
    assert all("503" in r["error"] for r in records if r["error"])
    assert report.benchmarks[TOY_ID]["errors"] == 2 and report.benchmarks[TOY_ID]["pass@1"] == pytest.approx(2 / 3)
    sent = server.bodies[0]
    assert sent["temperature"] == 0.6 and sent["top_p"] == 0.95 and sent["top_k"] == 20
    assert sent["repetition_penalty"] == 1.1  # the papers' eval sampling reaches the endpoint
    assert sum("Q1" in TOK.decode(b["prompt"]) for b in server.bodies) == 4  # 2 runs x (a request + a retry)


def test_a_refused_endpoint_stops_the_evaluation(server) -> None:
    server.status = 404
    engine = _engine(server)
    try:
        with pytest.raises(openai_engine.EndpointError, match="404"):
            run_eval(engine, TOK, [BenchmarkSpec(TOY_ID)], EvalSettings(n=1, k=(1,), limit=1), progress=False)
    finally:
        engine.close()
