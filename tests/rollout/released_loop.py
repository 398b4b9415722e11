"""The released ARPO/AEPO rollout loop, restated from algorithms.md §1.2 and §2.2 (not from our rollout code),
plus a scripted engine whose samples depend only on the prefix and how often it was asked for it.

Used by the replay test: our ``TreeRollout`` with default settings must make the decisions this loop makes.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field

from char_tokenizer import CharTokenizer

from aepo_agent.engines.base import SamplingParams, Segment

EOS = 0
TOOL_OPEN, TOOL_CLOSE, ANSWER_CLOSE = "<python>", "</python>", "</answer>"


class ScriptedEngine:
    """Samples are a pure function of (prefix, how many times this prefix was asked for before): equal
    prefixes (a source and its fresh clone) get different samples, in request order. Kinds: a tool call, an
    empty tool call, an answer, EOS, a long text cut by ``max_tokens``, and a short "length" stop (a model
    length limit) that leaves budget."""

    entropy_estimator = "exact"

    def __init__(self, weights: tuple[float, ...] = (0.5, 0.05, 0.17, 0.1, 0.1, 0.08)) -> None:
        self.tokenizer = CharTokenizer()
        self.weights = weights
        self.seen: dict[bytes, int] = {}

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        return [[self._sample(p, params.max_tokens)] for p in prefixes]

    def _sample(self, prefix: list[int], max_tokens: int) -> Segment:
        key = bytes(prefix)
        occurrence = self.seen.get(key, 0)
        self.seen[key] = occurrence + 1
        r = random.Random(zlib.crc32(key) * 7919 + occurrence)
        kind = r.choices(["tool", "empty", "answer", "eos", "long", "short_length"], weights=self.weights)[0]
        filler = "".join(r.choice("abc de") for _ in range(r.randint(1, 40)))
        eos, finish, stop = False, "stop", None
        if kind == "tool":
            code = "".join(r.choice("xyz") for _ in range(r.randint(1, 9)))
            text, stop = f"{filler}{TOOL_OPEN}{code}{TOOL_CLOSE}", TOOL_CLOSE
        elif kind == "empty":
            text, stop = f"{filler}{TOOL_OPEN} {TOOL_CLOSE}", TOOL_CLOSE
        elif kind == "answer":
            text, stop = f"{filler}<answer>\\boxed{{{r.randint(0, 3)}}}{ANSWER_CLOSE}", ANSWER_CLOSE
        elif kind == "eos":
            text, eos, finish = filler, True, "eos"
        elif kind == "long":
            text, finish = filler * 40, "length"
        else:
            text, finish = filler, "length"
        ids = self.tokenizer.encode(text) + ([EOS] if eos else [])
        if len(ids) > max_tokens:
            ids, finish, stop = ids[:max_tokens], "length", None
            text = self.tokenizer.decode([i for i in ids if i != EOS])
        ents = [r.uniform(0.0, 4.0) for _ in ids]
        return Segment(ids, [-r.uniform(0.0, 2.0) for _ in ids], ents, text, finish, stop)  # type: ignore[arg-type]

    def update_weights(self, named_tensors) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class ReleasedConfig:
    mode: str  # "arpo" or "aepo"
    n: int
    initial_rollouts: int
    beam_size: int = 2
    tau: float = 0.5
    beta: float = 0.2
    slope: float = 0.05
    window: int = 20
    response_length: int = 300
    call_limit: int = 3
    dynamic: bool = False
    probe_tokens: int = 50
    premonitor_beta: float = 0.5
    seed: int = 0


@dataclass
class _Path:
    parent: int | None  # index in its prompt's list
    tokens: list[int] = field(default_factory=list)
    calls: int = 0
    h_init: float | None = None
    seg_h: list[float] = field(default_factory=list)
    active: bool = True


def tool_result(code: str) -> str:
    """What the replay env's tool answers, in the released result wrapper."""
    return f" <result>\nran {len(code)}\n</result>"


class ReleasedLoop:
    """One released rollout call over ``prompts`` (token ids), with the engine and RNG draw order of §1.2."""

    def __init__(self, engine: ScriptedEngine, cfg: ReleasedConfig) -> None:
        self.engine, self.cfg = engine, cfg
        self.tok = engine.tokenizer
        self.rng = random.Random(cfg.seed)
        self.events: list[tuple] = []

    def _h(self, ents: list[float]) -> float:
        return sum(ents[: self.cfg.window]) / math.log(len(self.tok))

    def _params(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(max_tokens=max(1, max_tokens), stop=(ANSWER_CLOSE, TOOL_CLOSE))

    def _round(self, prompts: list[list[int]], paths: list[list[_Path]]) -> None:
        """Generate one segment for every active path, then apply the released tool rules."""
        cfg = self.cfg
        active = [(q, p) for q, group in enumerate(paths) for p in group if p.active]
        budget = max(cfg.response_length - len(p.tokens) for _, p in active)
        outs = self.engine.generate([prompts[q] + p.tokens for q, p in active], self._params(budget))
        for (_, p), (seg,) in zip(active, outs, strict=True):
            h = self._h(seg.entropies)
            if p.h_init is None:
                p.h_init = h
            p.seg_h.append(h)
            p.tokens += seg.token_ids
            if seg.stop_string == TOOL_CLOSE:
                if p.calls < cfg.call_limit:
                    p.calls += 1
                    content = seg.text.rsplit(TOOL_OPEN, 1)[1][: -len(TOOL_CLOSE)].strip()
                    if content:
                        p.tokens += self.tok.encode(tool_result(content))
                    else:
                        p.active = False  # empty call: stop silently, no EOS
                else:
                    p.tokens.append(EOS)
                    p.active = False
            elif seg.finish_reason == "length" and len(p.tokens) < cfg.response_length:
                pass  # continued in the next round
            else:
                p.active = False  # EOS or the answer's end
            if len(p.tokens) >= cfg.response_length:
                p.active = False

    def _premonitor(self, prompts: list[list[int]]) -> list[int]:
        cfg = self.cfg
        probes = self.engine.generate(list(prompts), self._params(cfg.probe_tokens))
        roots = [self._h(seg.entropies[: cfg.probe_tokens]) for (seg,) in probes]
        monitors = [[_Path(parent=None)] for _ in prompts]
        while any(p.active for group in monitors for p in group):
            self._round(prompts, monitors)
        budgets = []
        for root, (mon,) in zip(roots, monitors, strict=True):
            tool = sum(mon.seg_h) / len(mon.seg_h) if mon.seg_h else root
            sig = 1.0 / (1.0 + math.exp(-cfg.premonitor_beta * (root - tool)))
            budgets.append(max(1, min(cfg.n, int(cfg.n * sig) + 1)))
        return budgets

    def _take(self, delta: float, run: int) -> bool:
        cfg = self.cfg
        u = self.rng.random()
        if cfg.mode == "arpo":
            return min(max(u - cfg.beta * delta, 0.0), 1.0) <= cfg.tau
        score = (u + cfg.beta * delta) * max(0.0, 1.0 - cfg.slope * run)
        return min(max(score, 0.0), 1.0) >= cfg.tau

    def run(self, prompts: list[list[int]]) -> list[list[_Path]]:
        cfg = self.cfg
        if cfg.dynamic and cfg.mode == "aepo":
            initial = self._premonitor(prompts)
        else:
            initial = [max(1, min(cfg.n, cfg.initial_rollouts))] * len(prompts)
        for q, m in enumerate(initial):
            self.events.append(("budget", q, m))
        paths = [[_Path(parent=None) for _ in range(m)] for m in initial]
        runs = [0] * len(prompts)
        k = 0
        while any(p.active for group in paths for p in group):
            self.events.append(("round", k))
            k += 1
            had_active = [any(p.active for p in group) for group in paths]
            self._round(prompts, paths)
            gained = [False] * len(prompts)
            for q, group in enumerate(paths):  # BRANCH: active paths in creation order
                sources = [i for i, p in enumerate(group) if p.active]
                for i in sources:
                    src = group[i]
                    for _ in range(cfg.beam_size - 1):
                        if len(group) >= cfg.n:
                            break
                        if self._take(src.seg_h[-1] - src.h_init, runs[q]):
                            group.append(_Path(parent=i, tokens=list(src.tokens), calls=src.calls))
                            gained[q] = True
                            self.events.append(("branch", q, i, len(group) - 1))
            for q, group in enumerate(paths):  # FILL: one fresh global sample per round
                if not any(p.active for p in group) and len(group) < cfg.n:
                    group.append(_Path(parent=None))
                    gained[q] = True
                    had_active[q] = True
                    self.events.append(("fill", q, len(group) - 1))
            if any(gained):  # AEPO's l: consecutive rounds in which the prompt gained a trajectory
                for q in range(len(prompts)):
                    if had_active[q]:
                        runs[q] = runs[q] + 1 if gained[q] else 0
                        self.events.append(("run", q, runs[q]))
        for group in paths:
            for p in group:
                del p.tokens[cfg.response_length :]
        return paths
