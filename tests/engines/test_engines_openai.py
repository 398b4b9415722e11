"""OpenAIEngine against a scripted OpenAI-compatible server (request shape, finishes, retries, errors) and against
a real vLLM OpenAI server on SmolLM2 (greedy equals HFEngine; a flat CalcQA rollout equals HFEngine's)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from char_tokenizer import CharTokenizer
from json_http import JSONHandler
from local_services import VLLM_SKIP, free_port, vllm_openai_server, vllm_python

from aepo_agent.engines import Engine, SamplingParams
from aepo_agent.engines.entropy import ESTIMATORS, topk_tail_entropy
from aepo_agent.engines.openai_engine import EndpointError, OpenAIEngine

REPO = Path(__file__).resolve().parents[2]
enc = CharTokenizer().encode
Responder = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


class _Handler(JSONHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.read_json()
        server: FakeServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.requests.append((self.path, dict(self.headers), body))
        status, payload = server.responder(body)
        self.send_json(status, payload)



class FakeServer(ThreadingHTTPServer):
    """An OpenAI-compatible /v1/completions that records every request and answers with ``responder(body)``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.responder: Responder = lambda body: (500, {})
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out closed its socket: nothing to report


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(fake: FakeServer) -> FakeServer:
    fake.requests.clear()
    return fake


def _choice(index: int, text: str, ids: list[int] | None, finish: str, stop_reason: Any = None,
            logprobs: list[float] | None = None, with_ids: bool = True) -> dict[str, Any]:
    """A vLLM-shaped choice; ``logprobs``: the sampled token's per position, with a two-entry top-k dict."""
    choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": finish, "stop_reason": stop_reason}
    if with_ids:
        choice["token_ids"] = ids
    if logprobs is not None and ids is not None:
        choice["logprobs"] = {"tokens": [f"token_id:{t}" for t in ids], "token_logprobs": logprobs,
                              "top_logprobs": [{f"token_id:{t}": lp, "token_id:1": lp - 1.0}
                                               for t, lp in zip(ids, logprobs, strict=True)],
                              "text_offset": list(range(len(ids)))}
    return choice


def _reply(*choices: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"id": "cmpl-1", "object": "text_completion", "model": "m", "choices": list(choices)}


def _engine(server: FakeServer, **kwargs: Any) -> OpenAIEngine:
    kwargs = {"backoff_s": 0.01, "timeout_s": 5.0, **kwargs}
    return OpenAIEngine(server.url, "m", CharTokenizer(), **kwargs)


def test_request_shape_and_vllm_finishes(server: FakeServer) -> None:
    lp = [-0.5, -0.25, -0.125]

    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body["prompt"] == enc("p1"):
            stopped = enc("x=1</python>")  # vLLM keeps the stop token's id even where it strips the text
            return _reply(_choice(0, "x=1", stopped, "stop", "</python>", [-0.1] * len(stopped)),
                          _choice(1, "ok", [*enc("ok"), 0], "stop", None, lp))
        return _reply(_choice(0, "abc", enc("abc"), "length", None, lp, with_ids=False),
                      _choice(1, "no", [*enc("no"), 7], "stop", 7, lp))

    server.responder = respond
    engine = _engine(server, api_key="secret", logprobs_k=2)
    assert isinstance(engine, Engine) and engine.entropy_estimator == "topk_tail" and not engine.shares_weights
    params = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, repetition_penalty=1.1, max_tokens=12,
                            stop=("</python>",), seed=5)
    (a, b), (c, d) = engine.generate([enc("p1"), enc("p2")], params, n=2)

    assert len(server.requests) == 2
    for i, (path, headers, body) in enumerate(sorted(server.requests, key=lambda r: r[2]["prompt"])):
        assert path == "/v1/completions" and headers["Authorization"] == "Bearer secret"
        assert body == {"model": "m", "prompt": enc(f"p{i + 1}"), "n": 2, "max_tokens": 12, "temperature": 0.6,
                        "top_p": 0.95, "top_k": 20, "repetition_penalty": 1.1, "stop": ["</python>"],
                        "seed": 5 * 1_000_003 + i, "include_stop_str_in_output": True, "skip_special_tokens": True,
                        "return_token_ids": True, "logprobs": 2, "return_tokens_as_token_ids": True}
    # A stripped stop string comes back on the text; the ids already held it.
    assert (a.text, a.finish_reason, a.stop_string) == ("x=1</python>", "stop", "</python>")
    assert a.token_ids == enc("x=1</python>") and a.logprobs == [-0.1] * 12 and a.meta == {}
    assert (b.text, b.finish_reason, b.stop_string, b.token_ids) == ("ok", "eos", None, [*enc("ok"), 0])
    assert b.logprobs == lp
    assert b.entropies == pytest.approx([topk_tail_entropy([v, v - 1.0]) for v in lp])
    assert (c.finish_reason, c.token_ids, c.text) == ("length", enc("abc"), "abc")  # ids from "token_id:N"
    assert (d.finish_reason, d.token_ids) == ("eos", [*enc("no"), 7])  # stopped on a stop token id


def test_plain_openai_replies_are_retokenized_with_zero_logprobs(server: FakeServer) -> None:
    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = "abc</python>" if body["prompt"] == enc("p1") else "abc"
        return _reply({"index": 0, "text": text, "finish_reason": "stop"})  # no stop_reason, no ids

    server.responder = respond
    engine = _engine(server)
    assert engine.entropy_estimator == "none" and "none" in ESTIMATORS
    [[stopped], [ended]] = engine.generate([enc("p1"), enc("p2")], SamplingParams(stop=("</python>",)))
    body = server.requests[0][2]
    assert "seed" not in body and "logprobs" not in body and "return_tokens_as_token_ids" not in body
    assert (stopped.finish_reason, stopped.stop_string, stopped.token_ids) == ("stop", "</python>",
                                                                               enc("abc</python>"))
    assert (ended.finish_reason, ended.token_ids) == ("eos", [*enc("abc"), 0])  # the EOS id is added back
    assert ended.logprobs == ended.entropies == [0.0] * 4


def test_greedy_asks_for_one_sample_and_copies_it(server: FakeServer) -> None:
    server.responder = lambda body: _reply(_choice(0, "hi", enc("hi"), "length"))
    out = _engine(server).generate([enc("p")], SamplingParams(temperature=0, max_tokens=2), n=3)[0]
    assert [r[2]["n"] for r in server.requests] == [1]
    assert [s.token_ids for s in out] == [enc("hi")] * 3 and out[0].token_ids is not out[1].token_ids


def test_server_errors_are_retried_until_one_succeeds(server: FakeServer) -> None:
    calls = {"n": 0}

    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        calls["n"] += 1
        if calls["n"] == 1:
            return 500, {"error": "boom"}
        if calls["n"] == 2:
            return 429, {"error": "slow down"}
        return _reply(_choice(0, "ok", enc("ok"), "length"))

    server.responder = respond
    engine = _engine(server, max_retries=4)
    [[segment]] = engine.generate([enc("p")], SamplingParams(max_tokens=2))
    assert segment.text == "ok" and segment.meta == {} and engine.attempts == 3


def test_timeouts_are_retried(server: FakeServer) -> None:
    calls = {"n": 0}

    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(1.0)
        return _reply(_choice(0, "ok", enc("ok"), "length"))

    server.responder = respond
    engine = _engine(server, timeout_s=0.3)
    [[segment]] = engine.generate([enc("p")], SamplingParams(max_tokens=2))
    assert segment.text == "ok" and engine.attempts == 2


def test_a_request_failing_for_good_is_recorded_and_the_others_succeed(server: FakeServer) -> None:
    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body["prompt"] == enc("bad"):
            return 503, {"error": "down"}
        return _reply(*[_choice(i, "ok", enc("ok"), "length") for i in range(body["n"])])

    server.responder = respond
    engine = _engine(server, max_retries=2)
    good, bad = engine.generate([enc("good"), enc("bad")], SamplingParams(max_tokens=2), n=2)
    assert [s.text for s in good] == ["ok", "ok"]
    for segment in bad:
        assert (segment.token_ids, segment.text, segment.finish_reason) == ([], "", "eos")
        assert "gave up after 3 attempts" in segment.meta["error"] and "HTTP 503" in segment.meta["error"]
    assert sum(r[2]["prompt"] == enc("bad") for r in server.requests) == 3


def test_a_client_error_is_not_retried(server: FakeServer) -> None:
    server.responder = lambda body: (400, {"error": {"message": "prompt too long"}})
    engine = _engine(server)
    [[segment]] = engine.generate([enc("p")], SamplingParams(max_tokens=2))
    assert engine.attempts == 1 and len(server.requests) == 1
    assert segment.finish_reason == "eos" and "HTTP 400" in segment.meta["error"]
    assert "prompt too long" in segment.meta["error"]


def test_a_wrong_model_or_url_raises(server: FakeServer) -> None:
    server.responder = lambda body: (404, {"error": "model m not found"})
    with pytest.raises(EndpointError, match="404"):
        _engine(server).generate([enc("p")], SamplingParams(max_tokens=2))


def test_connection_errors_are_retried_then_recorded() -> None:
    port = free_port()  # nothing listens there
    engine = OpenAIEngine(f"http://127.0.0.1:{port}/v1", "m", CharTokenizer(), max_retries=2, backoff_s=0.01)
    [[segment]] = engine.generate([enc("p")], SamplingParams(max_tokens=2))
    assert engine.attempts == 3 and "ConnectionError" in segment.meta["error"]


def test_weights_cannot_be_updated_and_close_ends_the_engine(server: FakeServer) -> None:
    engine = _engine(server)
    with pytest.raises(RuntimeError, match="cannot be updated"):
        engine.update_weights([])
    engine.close()
    with pytest.raises(RuntimeError, match="after close"):
        engine.generate([enc("p")], SamplingParams())


# ------------------------------------------------------------------------------------------ real vLLM server
@pytest.fixture(scope="module")
def vllm_url(smollm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A vLLM OpenAI server on SmolLM2 (fp32, processed logprobs), stopped with its engine process afterwards."""
    python = vllm_python()
    if python is None:
        pytest.skip(VLLM_SKIP)
    log_path = tmp_path_factory.mktemp("vllm_server") / "server.log"
    with vllm_openai_server(python, smollm_dir, log_path, ["--logprobs-mode", "processed_logprobs"]) as url:
        yield url


def _chat(tokenizer: Any, question: str) -> list[int]:
    return list(tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                              tokenize=True, return_dict=False))


@pytest.mark.slow
@pytest.mark.parametrize("params", [SamplingParams(temperature=0, max_tokens=24, stop=("e",)),
                                    SamplingParams(temperature=0, max_tokens=48),
                                    SamplingParams(temperature=0, max_tokens=32, repetition_penalty=1.3)],
                         ids=["stop", "eos-length", "penalty"])
def test_vllm_server_greedy_equals_hf_greedy(vllm_url: str, hf_engine, params: SamplingParams) -> None:
    tok = hf_engine.tokenizer
    prefixes = [_chat(tok, q) for q in ("Hi", "Name three colors.", "Why is the sky blue?", "What is 2+3?")]
    engine = OpenAIEngine(vllm_url, "smollm", tok, logprobs_k=5)
    try:
        served = engine.generate(prefixes, params)
    finally:
        engine.close()
    reference = hf_engine.generate(prefixes, params)
    for [ours], [ref] in zip(served, reference, strict=True):
        assert ours.meta == {}
        assert (ours.token_ids, ours.text, ours.finish_reason, ours.stop_string) == \
            (ref.token_ids, ref.text, ref.finish_reason, ref.stop_string)
        assert max(abs(a - b) for a, b in zip(ours.logprobs, ref.logprobs, strict=True)) < 2e-3
        assert max(a - b for a, b in zip(ours.entropies, ref.entropies, strict=True)) < 1e-3  # a lower bound
    if params.stop:
        stopped = [s for [s] in served if s.finish_reason == "stop"]
        assert stopped and all(s.text.endswith("e") and s.stop_string == "e" for s in stopped)


@pytest.mark.slow
def test_vllm_server_flat_rollout_equals_hf(vllm_url: str, hf_engine) -> None:
    import gymnasium as gym

    import aepo_envs  # noqa: F401  (registers the ids)
    from aepo_agent.rollout import RolloutConfig, TreeRollout

    rows = {}
    engine = OpenAIEngine(vllm_url, "smollm", hf_engine.tokenizer)
    try:
        for name, backend in (("hf", hf_engine), ("served", engine)):
            envs = [gym.make("AEPO/CalcQA-v0", world_kwargs={"n_questions": 4}) for _ in range(2)]
            cfg = RolloutConfig(mode="flat", n=1, initial_rollouts=1, temperature=0.0, max_response_tokens=64, seed=0)
            try:
                rows[name] = TreeRollout(backend, cfg).run(envs, [{"index": 0}, {"index": 1}]).rows
            finally:
                for env in envs:
                    env.close()
    finally:
        engine.close()
    assert len(rows["hf"]) == len(rows["served"]) == 2
    for ref, ours in zip(rows["hf"], rows["served"], strict=True):
        assert ours.response_ids == ref.response_ids and ours.reward == ref.reward and ours.finish == ref.finish


@pytest.mark.slow
def test_aepo_eval_through_the_vllm_server_scores_as_the_in_process_engine(vllm_url: str, hf_engine, tmp_path) -> None:
    """`run_eval` (what `aepo eval --model openai:URL` runs) over vLLM's server gives the in-process engine's
    rewards and records for greedy decoding on the same tasks."""

    from aepo_agent.eval import BenchmarkSpec, EvalSettings, run_eval

    settings = EvalSettings(n=1, k=(1,), temperature=0.0, repetition_penalty=1.0, max_response_tokens=64,
                            segment_max_tokens=None, limit=3, tool_budgets=None)
    spec = BenchmarkSpec("AEPO/CalcQA-v0", {"world_kwargs": {"n_questions": 4}})
    served = OpenAIEngine(vllm_url, "smollm", hf_engine.tokenizer)
    records = {}
    try:
        for name, backend in (("hf", hf_engine), ("served", served)):
            out = tmp_path / name
            report = run_eval(backend, hf_engine.tokenizer, [spec], settings, output_dir=out, progress=False)
            assert report.sampled == 3
            lines = [json.loads(ln) for p in (out / "records").glob("*.jsonl") for ln in p.read_text().splitlines()]
            records[name] = sorted((r["task_id"], r["reward"], r.get("prediction")) for r in lines)
    finally:
        served.close()
    assert len(records["hf"]) == 3
    assert records["served"] == records["hf"]
