"""Pure-function RL algorithms: advantage estimators, policy losses, aggregation, KL and DAPO batch filters."""

from aepo_agent.algos.advantages import (
    arpo_hard_attribution,
    arpo_soft_attribution,
    discounted_returns,
    entropy_aware_advantages,
    grpo_advantages,
    masked_whiten,
    place_sequence_rewards,
    reinforce_pp_advantages,
    token_origins,
)
from aepo_agent.algos.dapo import dynamic_sampling_filter, overlong_reward_shaping
from aepo_agent.algos.losses import AggMode, KLKind, LossKind, LossOutput, aggregate, kl_penalty, policy_loss

__all__ = [
    "AggMode",
    "KLKind",
    "LossKind",
    "LossOutput",
    "aggregate",
    "arpo_hard_attribution",
    "arpo_soft_attribution",
    "discounted_returns",
    "dynamic_sampling_filter",
    "entropy_aware_advantages",
    "grpo_advantages",
    "kl_penalty",
    "masked_whiten",
    "overlong_reward_shaping",
    "place_sequence_rewards",
    "policy_loss",
    "reinforce_pp_advantages",
    "token_origins",
]
