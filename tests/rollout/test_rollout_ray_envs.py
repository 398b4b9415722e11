"""Rollouts through a Ray env pool (``env.workers.backend: ray``): the same rows as in-process envs, tool calls of
different trajectories overlapping, and a killed actor turned into feedback, a restart and exact group sizes.

One local Ray (``num_cpus=2``) serves the module. Its workers import the envs' factories from this directory (the
``PYTHONPATH`` of the Ray runtime env), as pytest does here.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from char_tokenizer import CharTokenizer  # noqa: E402
from released_loop import ScriptedEngine  # noqa: E402
from test_rollout_released_replay import EchoTool, _env  # noqa: E402

import aepo_envs  # noqa: E402
from aepo_agent.engines.base import SamplingParams, Segment  # noqa: E402
from aepo_agent.rollout import RolloutConfig, TreeRollout  # noqa: E402
from aepo_agent.rollout.env_workers import make_envs, make_registered  # noqa: E402
from aepo_agent.rollout.ray_envs import UNAVAILABLE_TEXT, RayEnv, RayEnvPool  # noqa: E402
from aepo_agent.trainer.config import EnvSection  # noqa: E402
from aepo_envs import ToolResult, ToolUseEnv  # noqa: E402
from aepo_envs.contract import clone_env, env_stop_strings, env_tasks  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module; its workers find this directory's modules as pytest does."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    path = os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}})
    yield
    ray.shutdown()


class ToolThenAnswer:
    """A scripted engine: ``calls`` python calls of ``code``, then an answer, the k-th time a prefix is asked for
    ``answers[k % len(answers)]`` (so the paths of a group can differ); entropies rise after each result so tree
    modes branch."""

    entropy_estimator = "exact"

    def __init__(self, code: str, calls: int = 1, answers: tuple[str, ...] = ("7",)) -> None:
        self.tokenizer = CharTokenizer()
        self.code, self.calls, self.answers = code, calls, answers
        self.seen: dict[tuple[int, ...], int] = {}

    def generate(self, prefixes: list[list[int]], params: SamplingParams, n: int = 1) -> list[list[Segment]]:
        out = []
        for prefix in prefixes:
            results = self.tokenizer.decode(prefix).count("<result>")
            if results < self.calls:
                text, stop = f"<python>{self.code}</python>", "</python>"
            else:
                k = self.seen[tuple(prefix)] = self.seen.get(tuple(prefix), -1) + 1
                text, stop = f"<answer>\\boxed{{{self.answers[k % len(self.answers)]}}}</answer>", "</answer>"
            ids = self.tokenizer.encode(text)
            out.append([Segment(ids, [-0.5] * len(ids), [1.0 + results] * len(ids), text, "stop", stop)])
        return out

    def update_weights(self, named_tensors) -> None:
        pass

    def close(self) -> None:
        pass


class MarkedSlowTool(EchoTool):
    """The first call of the whole test writes its actor's pid to a marker file and sleeps long enough to be
    killed; every other call (and every replayed one) answers at once."""

    name = "marked_slow"

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def call(self, args: Mapping[str, Any]) -> ToolResult:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return ToolResult(f"ran {args['code']}")
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        time.sleep(30)  # killed before it ends
        return ToolResult("not reached")


aepo_envs.register_tool("marked_slow", MarkedSlowTool, overwrite=True)


def marked_env(marker: str) -> ToolUseEnv:
    """Runs in the actors: an env whose python-tagged tool is ``MarkedSlowTool``."""
    tasks = [{"task_id": f"t{i}", "question": f"question {i} ?", "answers": ["7"]} for i in range(2)]
    return ToolUseEnv(tasks=tasks, tools=["marked_slow"], tool_configs={"marked_slow": {"marker": marker}},
                      reward="f1", max_turns=20, system_prompt="sys")


def _rows(result) -> list[tuple]:
    return [(r.group_id, r.traj_id, r.parent_id, r.response_ids, r.loss_mask, r.old_logprobs, r.entropies,
             r.segment_ids, r.reward, r.reward_components, r.num_tool_calls, r.finish) for r in result.rows]


def test_ray_pool_gives_the_in_process_rows() -> None:
    """Flat, ARPO and AEPO (dynamic) rollouts of a scripted engine over 3 prompts: equal rows (token ids, masks,
    log-probs, rewards, lineage) and decisions whether the envs run here or in 2 actors; the envs are reused
    across rollouts as the trainer reuses its root envs."""
    local = [_env(2) for _ in range(3)]
    pool = RayEnvPool(functools.partial(_env, 2), num_workers=2, max_concurrency=8)
    remote = pool.envs(3)
    assert all(isinstance(e, RayEnv) for e in remote) and {e._slot for e in remote} == {0, 1}
    assert env_stop_strings(remote[0]) == env_stop_strings(local[0])
    assert [t.task_id for t in env_tasks(remote[0])] == [t.task_id for t in env_tasks(local[0])]
    options = [{"task_id": f"t{q}"} for q in range(3)]
    compared = branched = 0
    for seed in range(6):
        for mode, dynamic in (("flat", False), ("arpo", False), ("aepo", True)):
            cfg = RolloutConfig(mode=mode, n=4, initial_rollouts=2, max_response_tokens=300, seed=seed,
                                dynamic_rollouts=dynamic)
            here = TreeRollout(ScriptedEngine(), cfg)
            there = TreeRollout(ScriptedEngine(), cfg)
            expected, got = here.run(local, options), there.run(remote, options)
            assert _rows(got) == _rows(expected), f"seed {seed} {mode}: rows differ through the Ray pool"
            assert there.events == here.events
            assert len(got.rows) == 12
            compared += 1
            branched += sum(r.parent_id is not None for r in got.rows)
    assert compared == 18 and branched > 0  # clones (made on their source's actor) were part of it
    assert pool.counters == {"lost_steps": 0, "rebuilds": 0, "failovers": 0}
    for env in [*local, *remote]:
        env.close()
    assert pool._closed  # the last owned env closed the pool


def test_slow_tool_calls_of_8_trajectories_overlap_in_the_pool() -> None:
    """8 trajectories whose real sandboxed python call sleeps 1 s: the rollout (its env threads sized to the pool
    automatically, env_threads left at 1) takes about 1 s, not 8."""
    pool = RayEnvPool(functools.partial(make_registered, "AEPO/CalcQA-v0", {}), num_workers=1, max_concurrency=8)
    (env,) = pool.envs(1)
    assert env.step_concurrency == 8
    engine = ToolThenAnswer("import time; time.sleep(1); print(7)")
    cfg = RolloutConfig(mode="flat", n=8, max_response_tokens=400, seed=0)
    assert cfg.env_threads == 1
    started = time.perf_counter()
    result = TreeRollout(engine, cfg).run([env], [{"index": 0}])
    wall = time.perf_counter() - started
    env.close()
    decoded = [engine.tokenizer.decode(r.response_ids) for r in result.rows]
    assert len(decoded) == 8 and all("<result>\n7\n</result>" in text for text in decoded), decoded[0]
    assert 1.0 <= wall < 5.0, f"8 overlapping 1 s tool calls took {wall:.2f} s (serial: >= 8 s)"


@pytest.mark.parametrize("restart", [True, False], ids=["restarted", "out_of_restarts"])
def test_killed_actor_gives_feedback_and_exact_groups(tmp_path: Path, restart: bool) -> None:
    """An actor killed while a tool call runs on it: that step returns backend_unavailable feedback, the
    trajectory goes on in an env rebuilt by replay (on the restarted actor, or on the other one when it has no
    restarts left), every group still has exactly n rows, and the next rollout on the same root envs works."""
    marker = str(tmp_path / "first_call")
    pool = RayEnvPool(functools.partial(marked_env, marker), num_workers=2, max_concurrency=8,
                      max_restarts=1 if restart else 0)
    envs = pool.envs(2)
    pids = pool.actor_pids()
    engine = ToolThenAnswer("step", calls=2)
    cfg = RolloutConfig(mode="arpo", n=4, initial_rollouts=2, max_response_tokens=600, seed=1)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = TreeRollout(engine, cfg).run(envs, [{"task_id": "t0"}, {"task_id": "t1"}])
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while not (os.path.exists(marker) and os.path.getsize(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = pids.index(int(Path(marker).read_text()))
    pool.kill_actor(victim, restart=restart)
    worker.join(timeout=120)
    assert not worker.is_alive() and "error" not in outcome, outcome.get("error")
    rows = outcome["result"].rows
    assert [sum(r.group_id == g for r in rows) for g in (0, 1)] == [4, 4]
    texts = [engine.tokenizer.decode(r.response_ids) for r in rows]
    lost = [t for t in texts if UNAVAILABLE_TEXT in t]
    assert lost and all(t.rstrip().endswith("</answer>") for t in lost)  # the hit paths went on to an answer
    assert all(r.finish == "answer" for r in rows)
    assert pool.counters["lost_steps"] >= 1 and pool.counters["rebuilds"] >= 1
    if restart:
        assert pool.actor_pids()[victim] != pids[victim]
        assert pool.counters["failovers"] == 0
    else:
        assert pool.counters["failovers"] >= 1 and len(pool.actor_pids()) == 1
    again = TreeRollout(engine, cfg).run(envs, [{"task_id": "t0"}, {"task_id": "t1"}])
    assert len(again.rows) == 8 and all(r.finish == "answer" for r in again.rows)
    for env in envs:
        env.close()


def test_make_envs_builds_the_pool_from_the_config_and_a_user_wrapper_still_works() -> None:
    """``env.workers.backend: ray`` gives contract proxies; a gym wrapper a user puts around one keeps working
    (clone through the chain, reward transform); ``local`` stays plain gym envs; bad settings fail at load."""
    import gymnasium as gym
    from pydantic import ValidationError

    section = EnvSection(id="AEPO/CalcQA-v0", workers={"backend": "ray", "num_workers": 1, "max_concurrency": 4})
    envs = make_envs(section, 2)
    assert all(isinstance(e, RayEnv) for e in envs)
    assert len(env_tasks(envs[0])) == 500 and "</python>" in env_stop_strings(envs[0])
    wrapped = gym.wrappers.TransformReward(envs[0], lambda r: r - 1.0)
    wrapped.reset(options={"index": 3})
    twin = clone_env(wrapped)
    assert isinstance(twin, gym.wrappers.TransformReward) and isinstance(twin.env, RayEnv)
    _, reward, terminated, _, _ = twin.step("<answer>\\boxed{nothing}</answer>")
    assert terminated and reward == -1.0  # 0 from the env (wrong answer) through the wrapper
    twin.close()
    pool = envs[0]._pool
    for env in envs:
        env.close()
    assert pool._closed
    local = make_envs(EnvSection(id="AEPO/CalcQA-v0"), 1)
    assert not isinstance(local[0], RayEnv)
    local[0].close()
    with pytest.raises(ValidationError, match="address"):
        EnvSection(workers={"backend": "ray", "address": "tcp://somewhere"})


def test_a_trainer_step_with_ray_env_workers_equals_the_local_one(tmp_path: Path) -> None:
    """The trainer's envs from ``env.workers`` (its ``make_envs`` seam): one AEPO step of a tiny Llama with real
    sandboxed python calls gives the same metrics and weights with ``backend: ray`` as with ``local``."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from aepo_agent.trainer import Trainer, load_config

    def step(backend: str) -> tuple[dict[str, float], dict[str, Any]]:
        config = {
            "run_dir": str(tmp_path / backend), "seed": 3,
            "env": {"id": "AEPO/CalcQA-v0",
                    "kwargs": {"world": None, "tasks": [{"task_id": f"t{i}", "question": f"6 * 7 + {i} - {i}",
                                                         "answers": ["42"]} for i in range(2)]},
                    "workers": {"backend": backend, "num_workers": 2, "max_concurrency": 4}},
            "rollout": {"mode": "arpo", "n": 3, "initial_rollouts": 2, "max_response_tokens": 200},
            "train": {"prompts_per_step": 2, "micro_batch_size": 3, "lr": 1e-3, "skip_zero_advantage": False,
                      "tensorboard": False, "plot": False},
        }
        path = tmp_path / f"{backend}.yaml"
        path.write_text(json.dumps(config))
        llama = transformers.LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(llama)
        engine = ToolThenAnswer("print(6 * 7)", answers=("42", "0", "0"))
        trainer = Trainer(load_config(path), model=model, tokenizer=engine.tokenizer, engine=engine)
        try:
            metrics = trainer.train_step(0)
        finally:
            trainer.close()
        return metrics, {k: v.detach().clone() for k, v in model.state_dict().items()}

    local_metrics, local_weights = step("local")
    ray_metrics, ray_weights = step("ray")
    assert local_metrics["rollout/tool_calls_per_traj"] == 1.0 and 0 < local_metrics["rollout/reward_mean"] < 1
    assert local_metrics["train/grad_norm"] > 0  # the groups' rewards differ: the step moves the weights
    for key in ("train/loss", "train/grad_norm", "rollout/reward_mean", "rollout/branches_per_tree",
                "rollout/response_tokens_mean"):
        assert ray_metrics[key] == local_metrics[key], key
    assert all(torch.equal(ray_weights[k], local_weights[k]) for k in local_weights)
    assert ray_metrics["envs/lost_steps"] == 0.0 and "envs/lost_steps" not in local_metrics  # pool events logged


def test_worker_rebuild_replays_to_the_same_state_or_says_it_cannot() -> None:
    """The actor body on its own (no Ray): a rebuild resets with the recorded task and replays the actions to
    the lost env's transcript; actions that would end the episode before the last one report a failed replay."""
    from aepo_agent.rollout.ray_envs import EnvLostError, EnvWorker

    worker = EnvWorker(functools.partial(_env, 5))
    worker.create(0)
    worker.reset(0, None, {"task_id": "t1"})
    actions = ["a<python>xy</python>", "b<python>z</python>"]
    for action in actions:
        worker.step(0, action)
    lost = worker._envs.pop(0)  # what a restart does to the actor's envs
    with pytest.raises(EnvLostError, match="restarted"):
        worker.step(0, "c<python>x</python>")
    assert worker.rebuild(0, {"seed": None, "options": {"task_id": "t1"}}, actions)
    assert worker._envs[0].unwrapped.transcript == lost.unwrapped.transcript
    assert not worker.rebuild(0, {"seed": None, "options": {"task_id": "t1"}},
                              ["<answer>\\boxed{1}</answer>", *actions])
    worker.close_all()
    lost.close()
