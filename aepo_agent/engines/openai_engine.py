"""OpenAI-compatible engine: samples from a served model's ``/v1/completions`` on token-id prompts (vLLM's server is
the reference), with retries, per-sample error records and top-k logprob entropy estimates."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import requests

from aepo_agent.engines.base import SamplingParams, Segment, validate_prefixes
from aepo_agent.engines.entropy import topk_tail_entropy

_TOKEN_ID = re.compile(r"^token_id:(\d+)$")
_FATAL_STATUS = (401, 403, 404)  # the endpoint, key or model name is wrong: no request of any call can succeed
_MAX_BACKOFF_S = 30.0


class EndpointError(RuntimeError):
    """A request the server refused in a way no retry or other sample can fix (bad URL, key or model name)."""


class _RequestFailed(Exception):
    """One request failed for good (after its retries, or at once for a non-retryable 4xx)."""


class OpenAIEngine:
    """Engine over an OpenAI-compatible completions endpoint serving the model the tokenizer belongs to.

    Each prefix of a ``generate`` call is one request (``prompt`` = its token ids, ``n`` samples; greedy: one
    sample, copied ``n`` times, as vLLM refuses greedy ``n > 1``), sent
    concurrently by ``max_concurrency`` threads; the server batches them (vLLM: continuous batching, prefix cache).
    One request per prefix keeps vLLM's per-request seeding (``seed * 1_000_003 + i``, as ``VLLMEngine``) and lets
    one bad request fail alone. Sent besides the OpenAI fields: vLLM's ``top_k``, ``repetition_penalty``,
    ``include_stop_str_in_output``, ``skip_special_tokens``, ``return_token_ids`` and, with ``logprobs_k > 0``,
    ``logprobs`` + ``return_tokens_as_token_ids``.

    Token ids come from the response's ``token_ids``, else its ``token_id:N`` logprob tokens, else the text
    re-tokenized. A stop string the server stripped (OpenAI does; vLLM's ``stop_reason`` names it) is put back
    at the end of the text. ``finish_reason`` "stop" with no stop string (``stop_reason`` None or a token id)
    is an EOS. Logprobs/entropies: with ``logprobs_k > 0`` the server's sampled-token logprobs and the
    ``topk_tail`` estimate (start vLLM with ``--logprobs-mode processed_logprobs`` so they are of the sampling
    distribution, as ``VLLMEngine``'s; ``--max-logprobs`` bounds ``logprobs_k``, 20 by default); else zeros and
    ``entropy_estimator = "none"``.

    Failures: connection errors, timeouts, 429 and 5xx are retried ``max_retries`` times with exponential backoff
    (``backoff_s * 2**attempt``, capped at 30 s; a plain loop over ``requests``). A request that still fails, or
    gets another 4xx (e.g. a prompt over the server's context), does not fail the call: its ``n`` segments are
    empty, ``finish_reason="eos"``, ``meta={"error": message}``. 401/403/404 raise ``EndpointError`` instead.
    """

    shares_weights = False  # a served model: its weights live in another process

    def __init__(self, base_url: str, model: str, tokenizer: Any, *, api_key: str | None = None,
                 timeout_s: float = 120.0, max_retries: int = 4, backoff_s: float = 1.0, logprobs_k: int = 0,
                 max_concurrency: int = 8) -> None:
        if max_retries < 0 or backoff_s < 0 or timeout_s <= 0:
            raise ValueError("max_retries and backoff_s must be >= 0 and timeout_s > 0")
        if logprobs_k < 0 or max_concurrency < 1:
            raise ValueError(f"logprobs_k must be >= 0 and max_concurrency >= 1, got {logprobs_k}, {max_concurrency}")
        if isinstance(tokenizer, str | os.PathLike):
            from transformers import AutoTokenizer

            from aepo_agent.models import resolve_model

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer))
        self.url = base_url.rstrip("/") + ("/completions" if base_url.rstrip("/").endswith("/v1")
                                           else "/v1/completions")
        self.model = model
        self._tokenizer = tokenizer
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.logprobs_k = logprobs_k
        self.max_concurrency = max_concurrency
        self.entropy_estimator = "topk_tail" if logprobs_k > 0 else "none"
        self._eos = getattr(tokenizer, "eos_token_id", None)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(max_concurrency, thread_name_prefix="openai-engine")
        self.attempts = 0  # HTTP requests sent, retries included (for tests and logs)

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        """Sample ``n`` continuations per prefix, one concurrent request per prefix; failed requests come back as
        empty segments with ``meta["error"]``."""
        validate_prefixes(prefixes, n)
        if self._pool is None:
            raise RuntimeError("OpenAIEngine.generate called after close()")
        seeds = [None if params.seed is None else (params.seed * 1_000_003 + i) % 2**63 for i in range(len(prefixes))]
        futures = [self._pool.submit(self._complete, list(p), params, n, s)
                   for p, s in zip(prefixes, seeds, strict=True)]
        return [f.result() for f in futures]

    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Refuse: a served model's weights cannot be changed through the completions API."""
        raise RuntimeError("OpenAIEngine serves a fixed model over HTTP: its weights cannot be updated, so it can "
                           "evaluate or collect rollouts but not train on-policy; use HFEngine or VLLMEngine")

    def close(self) -> None:
        """Stop the request threads (the server keeps running)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ------------------------------------------------------------------------------------------ requests
    def _body(self, prefix: list[int], params: SamplingParams, n: int, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model, "prompt": prefix, "n": n, "max_tokens": params.max_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
            "repetition_penalty": params.repetition_penalty, "include_stop_str_in_output": True,
            "skip_special_tokens": True, "return_token_ids": True,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if seed is not None:
            body["seed"] = seed
        if self.logprobs_k > 0:
            body["logprobs"] = self.logprobs_k
            body["return_tokens_as_token_ids"] = True
        return body

    def _complete(self, prefix: list[int], params: SamplingParams, n: int, seed: int | None) -> list[Segment]:
        asked = 1 if params.temperature == 0 else n  # vLLM refuses greedy n > 1: its n samples are one, copied
        try:
            response = self._post(self._body(prefix, params, asked, seed))
            choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
            if len(choices) != asked:
                raise _RequestFailed(f"the server returned {len(choices)} choices for n={asked}")
            segments = [self._segment(choice, params) for choice in choices]
        except (_RequestFailed, KeyError, TypeError, ValueError, AttributeError) as error:
            message = str(error) if isinstance(error, _RequestFailed) else f"malformed reply: {error!r}"
            return [Segment([], [], [], "", "eos", meta={"error": message}) for _ in range(n)]
        if asked < n:
            one = segments[0]
            segments += [replace(one, token_ids=list(one.token_ids), logprobs=list(one.logprobs),
                                 entropies=list(one.entropies), meta=dict(one.meta)) for _ in range(n - 1)]
        return segments

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            if self.api_key:
                session.headers["Authorization"] = f"Bearer {self.api_key}"
        return session

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on connection errors, timeouts, 429 and 5xx; other 4xx fail at once."""
        error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            with self._lock:
                self.attempts += 1
            try:
                reply = self._session().post(self.url, json=body, timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            if reply.status_code == 200:
                try:
                    return reply.json()
                except ValueError as exc:
                    raise _RequestFailed(f"the server's reply is not JSON: {exc}") from exc
            error = f"HTTP {reply.status_code}: {reply.text[:500]}"
            if reply.status_code in _FATAL_STATUS:
                raise EndpointError(f"{self.url} (model {self.model!r}) refused the request with {error}")
            if reply.status_code != 429 and reply.status_code < 500:
                raise _RequestFailed(error)
        raise _RequestFailed(f"gave up after {self.max_retries + 1} attempts; last: {error}")

    # ------------------------------------------------------------------------------------------ responses
    def _segment(self, choice: dict[str, Any], params: SamplingParams) -> Segment:
        text = choice.get("text") or ""
        reason = choice.get("finish_reason")
        stop_reason = choice.get("stop_reason")
        stop: str | None = None
        if reason == "length":
            finish = "length"
        elif isinstance(stop_reason, str):
            finish, stop = "stop", stop_reason
        elif "stop_reason" not in choice and reason == "stop":  # plain OpenAI: no stop_reason to tell EOS apart
            stop = next((s for s in params.stop if text.endswith(s)), None)
            finish = "stop" if stop is not None else "eos"
        else:
            finish = "eos"
        stripped = stop is not None and not text.endswith(stop)
        if stripped:
            text += stop  # the env parses its stop string (``</python>``) off the text
        ids, logprobs, entropies = self._tokens(choice)
        if ids is None:
            ids = list(self._tokenizer.encode(text, add_special_tokens=False))
            if finish == "eos":
                eos = stop_reason if isinstance(stop_reason, int) else self._eos
                if eos is not None and (not ids or ids[-1] != eos):
                    ids.append(int(eos))
        elif stripped and stop not in self._tokenizer.decode(ids, skip_special_tokens=True):
            ids += list(self._tokenizer.encode(stop, add_special_tokens=False))  # the server left the stop out
        meta: dict[str, Any] = {}
        if logprobs is None or len(logprobs) != len(ids):
            if self.logprobs_k > 0:
                meta["logprobs"] = "missing or not aligned with the token ids: zeros"
            logprobs, entropies = [0.0] * len(ids), [0.0] * len(ids)
        return Segment(token_ids=ids, logprobs=logprobs, entropies=entropies, text=text, finish_reason=finish,  # type: ignore[arg-type]
                       stop_string=stop, meta=meta)

    def _tokens(self, choice: dict[str, Any]) -> tuple[list[int] | None, list[float] | None, list[float]]:
        """Token ids (from ``token_ids`` or ``token_id:N`` logprob tokens), their logprobs and entropy estimates."""
        ids = choice.get("token_ids")
        ids = [int(t) for t in ids] if isinstance(ids, list) else None
        block = choice.get("logprobs") or {}
        sampled, tops = block.get("token_logprobs"), block.get("top_logprobs")
        if self.logprobs_k == 0 or not isinstance(sampled, list):
            return ids, None, []
        if ids is None:
            matches = [_TOKEN_ID.match(str(t)) for t in block.get("tokens") or []]
            if matches and all(matches):
                ids = [int(m.group(1)) for m in matches if m]
        logprobs = [-math.inf if lp is None else float(lp) for lp in sampled]
        tops = tops if isinstance(tops, list) and len(tops) == len(logprobs) else [None] * len(logprobs)
        # The top-k dict holds the sampled token too (vLLM sends k + 1 when it is not among the top k).
        entropies = [topk_tail_entropy([float(v) for v in top.values()] if top else [lp])
                     for lp, top in zip(logprobs, tops, strict=True)]
        return ids, logprobs, entropies
