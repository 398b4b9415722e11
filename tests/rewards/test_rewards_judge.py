import socket
import threading
from http.server import ThreadingHTTPServer

import pytest
from json_http import JSONHandler

from aepo_envs.rewards.judge import JudgeVerdict, LLMJudge, parse_verdict


class _Handler(JSONHandler):
    def do_POST(self):
        server = self.server
        body = self.read_json()
        server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        status, payload = server.respond(body)
        self.send_json(status, payload)



def _chat(content):
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


def _judge_by_keyword(body):
    prompt = body["messages"][0]["content"]
    prediction = prompt.split("Predicted Answer:")[1]
    return 200, _chat("<judgment>Correct</judgment>" if "Vienna" in prediction else "Incorrect")


@pytest.fixture
def serve():
    servers = []

    def start(respond):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.requests, server.respond = [], respond
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _free_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Correct", True),
        ("correct.", True),
        ("Incorrect", False),
        ("The answer is wrong", False),
        ("not correct", False),
        ("<judgment>Correct</judgment> although some say incorrect", True),
        ("I cannot tell", False),
        ("", False),
    ],
)
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply) is expected


def test_llm_verdicts_request_shape_and_auth(serve, monkeypatch):
    server, url = serve(_judge_by_keyword)
    monkeypatch.setenv("JUDGE_KEY", "secret")
    judge = LLMJudge(url, "judge-model", api_key_env="JUDGE_KEY", timeout_s=10, rule_shortcut=False)
    assert judge.judge("Capital of Austria?", "It is Vienna", ["Vienna, Austria"]) == JudgeVerdict(
        True, "llm", "<judgment>Correct</judgment>"
    )
    assert judge.judge("Capital of Austria?", "Graz", ["Vienna"]) == JudgeVerdict(False, "llm", "Incorrect")
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["auth"] == "Bearer secret"
    assert first["body"]["model"] == "judge-model"
    assert "Vienna, Austria" in first["body"]["messages"][0]["content"]


def test_no_auth_header_without_key(serve, monkeypatch):
    server, url = serve(_judge_by_keyword)
    monkeypatch.delenv("NO_SUCH_KEY_ENV", raising=False)
    LLMJudge(url, "m", api_key_env="NO_SUCH_KEY_ENV", rule_shortcut=False).judge("q", "Vienna", ["Wien"])
    assert server.requests[0]["auth"] is None


@pytest.mark.parametrize("suffix", ["cache.sqlite", "cache.json"])
def test_cache_answers_repeats_without_a_request(serve, tmp_path, suffix):
    server, url = serve(_judge_by_keyword)
    path = tmp_path / suffix
    judge = LLMJudge(url, "m", cache_path=path, rule_shortcut=False)
    assert judge.judge("q", "Vienna!", ["Wien"]).source == "llm"
    assert judge.judge("q", "Vienna!", ["Wien"]) == JudgeVerdict(
        True, "cache", "<judgment>Correct</judgment>"
    )
    again = LLMJudge(url, "m", cache_path=path, rule_shortcut=False)  # a new process would see the file too
    assert again.judge("q", "Vienna!", ["Wien"]).source == "cache"
    assert (
        LLMJudge(url, "other-model", cache_path=path, rule_shortcut=False)
        .judge("q", "Vienna!", ["Wien"])
        .source
        == "llm"
    )
    assert len(server.requests) == 2


def test_server_error_retries_then_falls_back(serve):
    server, url = serve(lambda body: (500, {"error": "boom"}))
    judge = LLMJudge(url, "m", max_retries=2, retry_backoff_s=0, rule_shortcut=False)
    verdict = judge.judge("q", "the Vienna", ["Vienna"])
    assert verdict.correct and verdict.source == "fallback" and "HTTP 500" in verdict.raw
    assert len(server.requests) == 3
    assert judge.judge("q", "Graz", ["Vienna"]) == JudgeVerdict(False, "fallback", verdict.raw)


def test_client_error_is_not_retried(serve):
    server, url = serve(lambda body: (404, {"error": "no such model"}))
    verdict = LLMJudge(url, "m", max_retries=3, retry_backoff_s=0, rule_shortcut=False).judge("q", "x", ["y"])
    assert verdict.source == "fallback" and not verdict.correct
    assert len(server.requests) == 1


def test_malformed_reply_falls_back(serve):
    server, url = serve(lambda body: (200, "not json"))
    verdict = LLMJudge(url, "m", max_retries=1, retry_backoff_s=0, rule_shortcut=False).judge(
        "q", "Chattahoochee National Forest area", ["Chattahoochee National Forest"]
    )
    assert verdict.source == "fallback" and "malformed" in verdict.raw
    assert verdict.correct  # token F1 = 6/7 >= 0.8
    assert len(server.requests) == 2


def test_server_down_falls_back_and_is_not_cached(tmp_path):
    judge = LLMJudge(
        _free_port_url(),
        "m",
        timeout_s=5,
        max_retries=1,
        retry_backoff_s=0,
        cache_path=tmp_path / "c.sqlite",
        rule_shortcut=False,
    )
    verdict = judge.judge("q", "Vienna", ["Vienna"])
    assert verdict.source == "fallback" and verdict.correct and "ConnectionError" in verdict.raw
    assert judge.judge("q", "Vienna", ["Vienna"]).source == "fallback"


def test_rule_shortcut_and_empty_prediction(serve):
    server, url = serve(_judge_by_keyword)
    judge = LLMJudge(url, "m")
    assert judge.judge("q", "The Vienna.", ["vienna"]) == JudgeVerdict(True, "rule", "rule match")
    assert judge.judge("q", None, ["vienna"]).correct is False
    assert judge.judge("q", "   ", ["vienna"]).source == "rule"
    assert server.requests == []


def test_bad_config_raises():
    with pytest.raises(ValueError, match="http"):
        LLMJudge("127.0.0.1:8000", "m")
    with pytest.raises(ValueError, match="placeholder"):
        LLMJudge("http://127.0.0.1:1/v1", "m", prompt_template="{question} {prediction}")
