"""Any aepo env as a verifiers (0.4.0, v1 API) taskset + env: verifiers' own runner plays our gym env turn by turn.

verifiers resolves a taskset id to an installed top-level module exporting one ``Taskset`` subclass (and
optionally one ``Env`` and one ``Harness``) through ``__all__``. This module is that plugin, registered on import
under the id ``aepo-verifiers`` (module ``aepo_verifiers``); the gym id is a taskset field::

    import aepo_envs.integrations.verifiers as avf
    env = avf.load_environment("AEPO/CalcQA-v0", max_turns=4)         # a verifiers ``Env`` (kwargs: gym.make's)
    episodes = avf.evaluate("AEPO/CalcQA-v0", base_url="http://127.0.0.1:8000/v1", model="m", limit=2)
    episodes[0].traces[0].rewards["aepo_reward"].score

verifiers' own CLI works once this module is imported (it registers the id)::

    python -c "import aepo_envs.integrations.verifiers; from verifiers.v1.cli.eval.main import main; main()" \\
        aepo-verifiers --env.taskset.env-id AEPO/CalcQA-v0 --model M --client.base-url URL -n 5 --no-push

An episode: the task's prompt (system + user, as our env renders them) goes to the agent; each reply has its stop
string restored (OpenAI-style ``stop`` strips ``</python>``) and is stepped in our env host-side (tools run in
our sandbox / search / browse); the env's text goes back as the next user turn until the env terminates or
truncates. The env's reward is recorded on the trace as ``aepo_reward``, its parts as metrics.

The agent is ``AepoHarness``: one chat completion per turn, run as a program in verifiers' *subprocess* runtime
(never the remote default), that talks only to verifiers' interception endpoint, which records the call and
forwards it to the model's OpenAI-compatible server. It needs no ``uv`` bootstrap, unlike verifiers' ``null``
harness, so it works offline.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import verifiers.v1 as vf
    from verifiers.v1.dialects.chat import message_to_wire
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "aepo_envs.integrations.verifiers needs verifiers==0.4.0, which pins mcp/openai versions that conflict "
        "with the project's .venv: build its own virtualenv with `bash scripts/setup_verifiers.sh` "
        "(.venv-verifiers) and run from there"
    ) from exc

import gymnasium as gym

import aepo_envs  # noqa: F401  (registers the AEPO/* ids)
from aepo_envs.contract import end_episode, end_episode_reward, env_stop_strings, env_tasks
from aepo_envs.protocol import restore_stop as _restore_stop

if TYPE_CHECKING:
    from verifiers.v1.configs.cli.eval import EvalConfig

__all__ = [
    "TASKSET_ID",
    "AepoEnv",
    "AepoEnvConfig",
    "AepoHarness",
    "AepoHarnessConfig",
    "AepoTask",
    "AepoTaskData",
    "AepoTaskset",
    "AepoTasksetConfig",
    "REWARD_NAME",
    "environment_config",
    "eval_config",
    "evaluate",
    "load_environment",
    "restore_stop",
]

TASKSET_ID = "aepo-verifiers"
"""The verifiers taskset id of this plugin (verifiers imports it as the top-level module ``aepo_verifiers``)."""
_MODULE_ALIAS = "aepo_verifiers"
REWARD_NAME = "aepo_reward"

# One model call per turn, in the runtime's interpreter (verifiers' own venv has ``openai``). Its only peer is
# the interception endpoint; the reply is recorded there, so the program prints nothing.
_TURN_PROGRAM = """
import json, os, sys
from openai import OpenAI
base_url, api_key, model, messages_file, stop = sys.argv[1:6]
with open(messages_file) as f:
    messages = json.load(f)
os.unlink(messages_file)
OpenAI(base_url=base_url, api_key=api_key, max_retries=2).chat.completions.create(
    model=model, messages=messages, stop=json.loads(stop) or None)
"""


# ------------------------------------------------------------------------------------------------ taskset
class AepoTasksetConfig(vf.TasksetConfig):
    """Which aepo env the tasks come from (``--env.taskset.env-id``) and its ``gym.make`` kwargs."""

    env_id: str = "AEPO/CalcQA-v0"
    env_kwargs: dict[str, Any] = {}


class AepoTaskData(vf.TaskData):
    """One task row of an aepo env: what the episode resets our env to, and the gold answers (never prompted)."""

    env_id: str
    env_kwargs: dict[str, Any] = {}
    task_id: str
    answers: list[str] = []
    stop_strings: list[str] = []


class AepoTask(vf.Task[AepoTaskData]):
    """A task whose trace key is the durable ``env_id/task_id``."""

    @property
    def key(self) -> str:
        return f"{self.data.env_id}/{self.data.task_id}"


class AepoTaskset(vf.Taskset[AepoTask, AepoTasksetConfig]):
    """The env's task rows (``env_tasks``), each with the prompt our env renders for it on reset."""

    def load(self) -> Iterator[AepoTask]:
        config = self.config
        env = gym.make(config.env_id, **config.env_kwargs)
        try:
            stops = list(env_stop_strings(env))
            for row in env_tasks(env):
                _, info = env.reset(options={"task_id": row.task_id})
                system, prompt = _split_prompt(info["messages"])
                yield AepoTask(
                    AepoTaskData(
                        id=row.task_id, name=row.task_id, prompt=prompt, system_prompt=system,
                        env_id=config.env_id, env_kwargs=dict(config.env_kwargs), task_id=row.task_id,
                        answers=list(row.answers), stop_strings=stops,
                    ),
                    config.task,
                )
        finally:
            env.close()


def _split_prompt(messages: Sequence[Mapping[str, str]]) -> tuple[str | None, str]:
    """(system prompt, user prompt) of the reset messages."""
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    user = "\n\n".join(m["content"] for m in messages if m["role"] != "system")
    return system, user


# ------------------------------------------------------------------------------------------------ harness
class AepoHarnessConfig(vf.HarnessConfig):
    """No knobs: sampling comes from the run (``--sampling.*``), stop strings from the task."""


class AepoHarness(vf.Harness[AepoHarnessConfig]):
    """One plain chat completion per turn (no tool schemas: our env parses tool calls out of the text)."""

    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(self, ctx: vf.ModelContext, trace: vf.Trace, runtime: vf.Runtime, endpoint: str, secret: str,
                     mcp_urls: dict[str, str], data: vf.TaskData, **_: Any) -> vf.ProgramResult:
        system, prompt = self.resolve_prompt(data)
        messages = [{"role": "system", "content": system}] if system else []
        if isinstance(prompt, str):
            messages.append({"role": "user", "content": prompt})
        elif prompt is not None:
            messages += [message_to_wire(message) for message in prompt]
        path = f".aepo-messages-{trace.id}-{trace.num_turns}.json"
        await runtime.write(path, json.dumps(messages).encode())
        stops = getattr(data, "stop_strings", [])
        argv = [sys.executable, "-c", _TURN_PROGRAM, endpoint, secret, ctx.model, path, json.dumps(stops)]
        return await runtime.run(argv, self.config.resolved_env)


# ------------------------------------------------------------------------------------------------ env
class AepoEnvConfig(vf.EnvConfig):
    """One seat, ``player``, in the local subprocess runtime (verifiers' default is a remote sandbox)."""

    player: vf.AgentConfig = vf.AgentConfig(runtime=vf.SubprocessConfig())


class AepoEnv(vf.Env[AepoEnvConfig]):
    """Plays our gym env on the task: each reply is one ``env.step``; the env's reward goes on the trace."""

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        data = task.data
        if not isinstance(data, AepoTaskData):
            raise TypeError(f"AepoEnv plays AepoTaskData tasks (taskset id {TASKSET_ID!r}), got {type(data).__name__}")
        env = await asyncio.to_thread(gym.make, data.env_id, **data.env_kwargs)
        try:
            await asyncio.to_thread(env.reset, options={"task_id": data.task_id})
            async with agents.player.interaction(task) as interaction:
                outcome = await _play(env, interaction)
            trace = interaction.trace
            if outcome is None:  # the agent's run failed (endpoint, harness): unscored, as verifiers marks it
                trace.rewards[REWARD_NAME] = None
                return
            total, info = outcome
            trace.record_reward(REWARD_NAME, total)
            trace.record_metrics({f"aepo/{k}": v for k, v in info.get("reward_components", {}).items()})
            trace.info["aepo"] = {
                "env_id": data.env_id, "task_id": data.task_id, "final_answer": info.get("final_answer"),
                "num_tool_calls": info.get("num_tool_calls"), "truncation_reason": info.get("truncation_reason"),
            }
        finally:
            await asyncio.to_thread(env.close)


async def _play(env: gym.Env, interaction: vf.Interaction) -> tuple[float, dict[str, Any]] | None:
    """Step ``env`` with each reply until it ends: (total reward, last step info); None if the agent's run failed."""
    stops = env_stop_strings(env)
    total = 0.0
    segment = await interaction.turn()  # the prompted task speaks first
    while not segment.terminated:
        calls = interaction.trace.calls
        action = restore_stop(segment.last_reply, stops, calls[-1].finish_reason if calls else None)
        obs, reward, terminated, truncated, info = await asyncio.to_thread(env.step, action)
        total += reward
        if terminated or truncated:
            return total, info
        segment = await interaction.turn(obs)
    if interaction.trace.errors:
        return None
    # The agent's run ended (a turn or token limit) before our env did: scored as an episode ended from outside.
    raw, components = await asyncio.to_thread(end_episode, env, "agent_stopped")
    return total + end_episode_reward(env, raw), {"reward_components": components, "truncation_reason": "agent_stopped"}


def restore_stop(text: str, stop_strings: Sequence[str], finish_reason: str | None) -> str:
    """``text`` with the stop string the server stripped put back (``aepo_envs.protocol.restore_stop``), on a
    ``finish_reason`` "stop": chat ``stop`` drops the matched string and reports "stop" as for an EOS."""
    return _restore_stop(text, stop_strings) if finish_reason == "stop" else text


# ------------------------------------------------------------------------------------------------ entry points
def environment_config(env_id: str = "AEPO/CalcQA-v0", env_kwargs: Mapping[str, Any] | None = None,
                       **config: Any) -> AepoEnvConfig:
    """The verifiers env config for an aepo env id; ``config`` sets other ``AepoEnvConfig`` fields."""
    if env_id not in gym.registry:
        raise gym.error.NameNotFound(f"{env_id!r} is not a registered env; aepo_envs.list_envs() lists the ids")
    taskset = AepoTasksetConfig(id=TASKSET_ID, env_id=env_id, env_kwargs=dict(env_kwargs or {}))
    return AepoEnvConfig(taskset=taskset, **config)


def load_environment(env_id: str = "AEPO/CalcQA-v0", env_config: Mapping[str, Any] | None = None,
                     **env_kwargs: Any) -> AepoEnv:
    """The verifiers ``Env`` for ``gym.make(env_id, **env_kwargs)``, built by verifiers' own loader
    (``vf.load_environment``); ``env_config`` sets ``AepoEnvConfig`` fields (``player``, ``timeout``, ...)."""
    env = vf.load_environment(environment_config(env_id, env_kwargs, **dict(env_config or {})))
    if not isinstance(env, AepoEnv):  # another installed module answers to our taskset id
        raise TypeError(f"verifiers resolved {TASKSET_ID!r} to {type(env).__name__}, not AepoEnv; remove the "
                        f"other {_MODULE_ALIAS!r} module from the path")
    return env


def eval_config(env_id: str, *, base_url: str, model: str, env_kwargs: Mapping[str, Any] | None = None,
                limit: int | None = None, num_rollouts: int = 1, sampling: Mapping[str, Any] | None = None,
                output_dir: str | Path = "outputs", api_key_var: str = "OPENAI_API_KEY",
                max_concurrent: int | None = 8, player: Mapping[str, Any] | None = None) -> EvalConfig:
    """verifiers' ``EvalConfig`` for ``vf-eval``'s runner: no dashboard, no platform upload, the model behind
    ``base_url`` (OpenAI-compatible, ``.../v1``), the first ``limit`` tasks; ``player`` overrides fields of the
    seat's ``vf.AgentConfig`` (``max_turns``, ``timeout``, ...)."""
    from verifiers.v1.configs.cli.eval import EvalConfig

    env = environment_config(env_id, env_kwargs, **({"player": dict(player)} if player else {}))
    return EvalConfig(
        env=env, model=model, num_rollouts=num_rollouts,
        client=vf.EvalClientConfig(base_url=base_url, api_key_var=api_key_var),
        sampling=vf.SamplingConfig(**dict(sampling or {})), select={"limit": limit},
        output_dir=Path(output_dir), rich=None, push=False, max_concurrent=max_concurrent,
    )


def evaluate(env_id: str, **kwargs: Any) -> list[vf.Episode]:
    """Run ``eval_config(env_id, **kwargs)`` through verifiers' eval runner (``traces.jsonl`` in its run dir)."""
    from verifiers.v1.cli.eval.runner import run_eval

    return asyncio.run(run_eval(eval_config(env_id, **kwargs)))


# verifiers imports a taskset id as a top-level module; this one lives inside aepo_envs, so it registers its id.
sys.modules.setdefault(_MODULE_ALIAS, sys.modules[__name__])
