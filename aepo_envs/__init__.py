"""aepo_envs: Gymnasium multi-turn LLM tool-use environments (search, browse, python) over agent benchmarks.

``import aepo_envs`` registers every ``AEPO/<Name>-v0`` id; it imports no torch and touches no network.
"""

from aepo_envs.backends.base import ExecResult, Hit, Link, Page
from aepo_envs.contract import (
    AgentEnv,
    clone_env,
    end_episode,
    end_episode_reward,
    env_stop_strings,
    env_tasks,
)
from aepo_envs.envs.remote import RemoteEnvError, connect
from aepo_envs.envs.tool_use_env import ToolUseEnv
from aepo_envs.registry import list_envs, register_all
from aepo_envs.spaces import UnicodeText
from aepo_envs.tasks.base import DatasetNotFoundError, TaskRow
from aepo_envs.tools.base import Tool, ToolResult, ToolStatus, make_tool, register_tool, registered_tools

__version__ = "0.1.0"

register_all()

__all__ = [
    "AgentEnv",
    "DatasetNotFoundError",
    "ExecResult",
    "Hit",
    "Link",
    "Page",
    "RemoteEnvError",
    "TaskRow",
    "Tool",
    "ToolResult",
    "ToolStatus",
    "ToolUseEnv",
    "UnicodeText",
    "clone_env",
    "connect",
    "end_episode",
    "end_episode_reward",
    "env_stop_strings",
    "env_tasks",
    "list_envs",
    "make_tool",
    "register_all",
    "register_tool",
    "registered_tools",
]
