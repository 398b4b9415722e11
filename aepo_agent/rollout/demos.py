"""Demonstrations: episodes of a scripted oracle in an env, laid out as rollout rows (the cold-start SFT data).

A row has exactly the token layout a rollout of the policy produces (chat-templated prompt; response = the
oracle's actions as model tokens, loss mask 1, and the env's text, loss mask 0; EOS after the final answer), so
a warm start teaches the format RL then samples from. Only worlds with an oracle (``aepo_envs.worlds``) qualify.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aepo_agent.rollout.trajectory import RolloutRow, chat_prompt_ids


def oracle_rows(env: Any, tokenizer: Any, indices: Iterable[int], *, max_actions: int = 20) -> list[RolloutRow]:
    """One row per task index, played by ``aepo_envs.worlds.oracle.OracleAgent``; unsolved episodes are dropped."""
    from aepo_envs.worlds.oracle import OracleAgent

    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("oracle_rows: the tokenizer has no eos_token_id; demonstrations must end with one")
    rows: list[RolloutRow] = []
    for index in indices:
        observation, info = env.reset(options={"index": int(index)})
        prompt = chat_prompt_ids(tokenizer, info["messages"])
        agent = OracleAgent(env.get_wrapper_attr("current_task") if hasattr(env, "get_wrapper_attr")
                            else env.current_task)
        ids: list[int] = []
        mask: list[int] = []
        seg: list[int] = []
        reward, tool_calls, finished = 0.0, 0, False
        for step in range(max_actions):
            action = agent.act(observation)
            action_ids = tokenizer.encode(action, add_special_tokens=False)
            ids += action_ids
            mask += [1] * len(action_ids)
            seg += [2 * step + 1] * len(action_ids)
            observation, reward, terminated, truncated, step_info = env.step(action)
            if terminated or truncated:
                ids.append(int(eos))
                mask.append(1)
                seg.append(2 * step + 1)
                finished = terminated
                break
            tool_calls += int(step_info.get("tool_name") is not None)
            obs_ids = tokenizer.encode(observation, add_special_tokens=False)
            ids += obs_ids
            mask += [0] * len(obs_ids)
            seg += [2 * step + 2] * len(obs_ids)
        if not finished or reward <= 0:
            continue
        rows.append(
            RolloutRow(
                group_id=len(rows),
                task_id=str(info["task_id"]),
                traj_id=len(rows),
                parent_id=None,
                branch_step=None,
                prompt_ids=prompt,
                response_ids=ids,
                loss_mask=mask,
                old_logprobs=[0.0] * len(ids),
                entropies=[0.0] * len(ids),
                segment_ids=seg,
                reward=float(reward),
                reward_components={},
                num_tool_calls=tool_calls,
                finish="answer",
            )
        )
    return rows

