"""``AEPO/Remote-v0``: a gymnasium env on an ``aepo-envs serve`` server passes ``check_env``, keeps the env
contract (stop strings, tasks, clone, end_episode), trains with our trainer, and fails clearly when the server dies.

The server runs in an interpreter with openenv (``$AEPO_OPENENV_PYTHON`` or ``.venv-openenv``); this process
needs only ``websockets``.
"""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("websockets", reason="the remote env needs websockets>=17 (the 'remote' extra)")

from local_services import require_python_sandbox  # noqa: E402
from openenv_server import require_openenv_python, served, start_server, wait_until  # noqa: E402

import aepo_envs  # noqa: E402
from aepo_envs import RemoteEnvError, clone_env, end_episode, env_stop_strings, env_tasks  # noqa: E402
from aepo_envs.envs.remote import SessionLost  # noqa: E402
from aepo_envs.worlds.oracle import run_episode  # noqa: E402

CALC = {"world_kwargs": {"n_questions": 12}, "tool_configs": {"python": {"prestart": 0, "timeout_s": 5}}}


@pytest.fixture(scope="module")
def server():
    python = require_openenv_python()
    require_python_sandbox()
    with served(python, "AEPO/CalcQA-v0", CALC, max_sessions=8, idle_timeout=600) as srv:
        yield srv


def test_check_env_and_the_same_episode_as_the_local_env(server) -> None:
    remote = aepo_envs.connect(server.url)
    local = gym.make("AEPO/CalcQA-v0", **CALC)
    try:
        check_env(remote.unwrapped, skip_render_check=True)
        assert env_stop_strings(remote) == env_stop_strings(local)
        assert [t.task_id for t in env_tasks(remote)] == [t.task_id for t in env_tasks(local)]
        assert env_tasks(remote)[3] == env_tasks(local)[3]  # whole rows: question, answers, meta
        (r_text, r_info), (l_text, l_info) = (e.reset(options={"index": 5}) for e in (remote, local))
        assert r_text == l_text and r_info == l_info
        assert remote.get_wrapper_attr("current_task").task_id == r_info["task_id"]
        for action in ("<python>print(2 ** 20)</python>", "no tool call here", "<answer>\\boxed{7}</answer>"):
            assert remote.step(action) == local.step(action)
        with pytest.raises(RemoteEnvError, match="episode is over"):
            remote.step("<answer>\\boxed{7}</answer>")
    finally:
        remote.close()
        local.close()
    wait_until(lambda: server.sessions()["active"] == 0, 30, "the session to close")


def test_clone_env_branches_a_remote_env_and_end_episode_scores_it(server) -> None:
    env = aepo_envs.connect(server.url)
    try:
        _, info = env.reset(options={"index": 2})
        gold = env_tasks(env)[2].answers[0]
        env.step("<python>print(6 * 7)</python>")
        branch = clone_env(env)  # a new server session on a copy, through gym.make's wrappers
        assert server.sessions()["active"] == 2
        assert branch.step(f"<answer>\\boxed{{{gold}}}</answer>")[1:4] == (1.0, True, False)
        obs, reward, terminated, truncated, step_info = env.step("<python>print(1 + 1)</python>")
        assert "2" in obs and step_info["turn"] == 2 and not terminated  # the original went on by itself
        assert end_episode(env, "eos") == (0.0, {"math": 0.0})
        branch.close()
    finally:
        env.close()
    wait_until(lambda: server.sessions()["active"] == 0, 30, "both sessions to close")


def test_the_oracle_solves_calcqa_through_the_remote_env(server) -> None:
    env = gym.make("AEPO/Remote-v0", url=server.url, render_mode="ansi")
    try:
        results = [run_episode(env, task) for task in env_tasks(env)[:3]]
        assert [r.reward for r in results] == [1.0, 1.0, 1.0]
        assert "[assistant]" in env.render() and "<python>" in env.render()
    finally:
        env.close()


def test_bad_urls_and_unreachable_servers_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        aepo_envs.connect("127.0.0.1:1")
    with pytest.raises(RemoteEnvError, match="cannot reach the env server"):
        aepo_envs.connect("http://127.0.0.1:9", connect_timeout_s=5)


def test_idle_close_then_server_killed_mid_rollout_are_clear_and_reset_reconnects() -> None:
    python = require_openenv_python()
    require_python_sandbox()
    srv = start_server(python, "AEPO/CalcQA-v0", CALC, max_sessions=2, idle_timeout=2)
    env = aepo_envs.connect(srv.url, timeout_s=30)
    try:
        env.reset(options={"index": 0})
        wait_until(lambda: srv.sessions()["active"] == 0, 30, "the idle session to close")
        with pytest.raises(SessionLost, match="1001 idle"):
            env.step("<python>print(0)</python>")  # the episode died with its session
        env.reset(options={"index": 0})  # a reset loses nothing: it opens a new session
        assert srv.sessions()["active"] == 1
        env.step("<python>print(1)</python>")
        errors: list[BaseException] = []

        def slow_step() -> None:  # the server dies while this step's python call runs
            try:
                env.step("<python>import time; time.sleep(3); print(2)</python>")
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=slow_step)
        worker.start()
        time.sleep(1.0)
        srv.kill()
        worker.join(timeout=40)
        assert not worker.is_alive(), "the step hung after the server died"
        assert len(errors) == 1 and isinstance(errors[0], SessionLost)
        assert "connection" in str(errors[0]) and "reset()" in str(errors[0])
        with pytest.raises(RemoteEnvError, match="no episode in progress"):
            env.step("<python>print(3)</python>")
        with pytest.raises(RemoteEnvError, match="cannot reach"):
            env.reset()
        srv = start_server(python, "AEPO/CalcQA-v0", CALC, max_sessions=2, port=srv.port)  # same address
        _, info = env.reset(options={"index": 1})  # a new session on the restarted server
        assert info["task_id"] == env_tasks(env)[1].task_id
    finally:
        env.close()
        srv.kill()


def test_the_trainer_runs_a_quickstart_sized_step_on_a_remote_env(server, smollm, tmp_path) -> None:
    from aepo_agent.trainer import Trainer, load_config

    model, tok = smollm
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "seed: 0\n"
        f"run_dir: {tmp_path / 'run'}\n"
        "model: {name: smollm2-135m-instruct, dtype: float32}\n"
        f"env: {{id: AEPO/Remote-v0, kwargs: {{url: '{server.url}'}}}}\n"
        "rollout: {mode: aepo, n: 4, initial_rollouts: 2, beam_size: 2, branch_probability: 0.5,\n"
        "          max_response_tokens: 48, response_prefix: '<python>print(2 ** 10)</python>'}\n"
        "algo: {loss: aepo, entropy_advantage: true}\n"
        "train: {steps: 1, prompts_per_step: 1, mini_batch_prompts: 1, micro_batch_size: 4, save_every: 1,\n"
        "        lr: 1.0e-5}\n"
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(load_config(path), model=model, tokenizer=tok)
    try:
        history = trainer.train()
    finally:
        trainer.close()
        model.load_state_dict(before)  # the session-wide model stays pristine for other tests
    assert len(history) == 1
    metrics = history[0]
    assert metrics["rollout/tool_calls_per_traj"] >= 1.0  # the prefix's python call ran on the server
    assert "train/loss" in metrics and "train/grad_norm" in metrics
    wait_until(lambda: server.sessions()["active"] == 0, 60, "the trainer's sessions to close")
