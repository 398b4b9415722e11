"""Every registered id: check_env, vectorisation, the import contract."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import aepo_envs
from aepo_envs.registry import load_env_specs

ALL_IDS = aepo_envs.list_envs()
# Frames and MATH have no file in ../shared/data: their loaders are tested on files in their published schema.
NO_SHARED_FILE = {"AEPO/Frames-v0", "AEPO/MATH-v0"}
EXPECTED = {
    "AEPO/GAIA-v0", "AEPO/HLE-v0", "AEPO/WebWalkerQA-v0", "AEPO/HotpotQA-v0", "AEPO/2Wiki-v0",
    "AEPO/MuSiQue-v0", "AEPO/Bamboogle-v0", "AEPO/SimpleQA-v0", "AEPO/XBenchDeepSearch-v0", "AEPO/AIME24-v0",
    "AEPO/AIME25-v0", "AEPO/MATH500-v0", "AEPO/GSM8K-v0", "AEPO/Frames-v0", "AEPO/MATH-v0",
    "AEPO/DeepSearch1K-v1", "AEPO/Reasoning10K-v1", "AEPO/SynthWiki-v0", "AEPO/CalcQA-v0",
}


def test_every_benchmark_is_registered():
    assert set(ALL_IDS) >= EXPECTED
    for env_id in ALL_IDS:
        assert env_id in gym.registry


def test_list_envs_by_family():
    assert set(aepo_envs.list_envs("math")) == {
        "AEPO/AIME24-v0", "AEPO/AIME25-v0", "AEPO/MATH500-v0", "AEPO/GSM8K-v0", "AEPO/MATH-v0"
    }


def test_spec_kwargs_are_json_serialisable():
    for env_id in ALL_IDS:
        gym.spec(env_id).to_json()


@pytest.mark.parametrize("env_id", sorted(set(ALL_IDS) - NO_SHARED_FILE))
def test_check_env(env_id, shared_data):
    env = gym.make(env_id, limit=20)
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


def family_representatives() -> list[str]:
    seen: dict[str, str] = {}
    for env_id, spec in load_env_specs().items():
        if env_id not in NO_SHARED_FILE:
            seen.setdefault(spec["family"], env_id)
    return sorted(seen.values())


@pytest.mark.parametrize("env_id", family_representatives())
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(env_id, mode, shared_data):
    kwargs = {"vector_kwargs": {"shared_memory": False}} if mode == "async" else {}
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, limit=10, **kwargs)
    try:
        obs, info = envs.reset(seed=3)
        assert len(obs) == 2 and all(isinstance(o, str) and o for o in obs)
        obs, reward, term, trunc, info = envs.step(("no tags here", "<answer>\\boxed{0}</answer>"))
        assert isinstance(obs[0], str) and "Invalid action" in obs[0]
        assert bool(term[1]) and not bool(trunc[1]) and not bool(term[0])
    finally:
        envs.close()


def test_make_with_module_prefix_without_prior_import(shared_data):
    code = (
        "import gymnasium as gym, sys\n"
        "env = gym.make('aepo_envs:AEPO/GSM8K-v0')\n"
        "obs, info = env.reset(seed=0)\n"
        "assert isinstance(obs, str) and obs\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_import_has_no_torch_and_no_network():
    code = (
        "import socket, sys\n"
        "def deny(*a, **k):\n"
        "    raise AssertionError('network touched at import')\n"
        "socket.socket.connect = deny\n"
        "socket.create_connection = deny\n"
        "socket.getaddrinfo = deny\n"
        "import aepo_envs\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'transformers' not in sys.modules\n"
        "print(len(aepo_envs.list_envs()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= len(EXPECTED)


def test_kwargs_override_yaml_deeply(shared_data):
    env = gym.make("AEPO/HotpotQA-v0", tool_configs={"search": {"top_k": 3}}, max_turns=2, limit=5)
    try:
        cfg = env.unwrapped.config
        assert cfg.max_turns == 2
        assert cfg.tool_configs["search"]["top_k"] == 3
        assert cfg.tool_configs["search"]["backend"] == "wiki"  # kept from the YAML
    finally:
        env.close()


def test_missing_dataset_error_names_the_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("AEPO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(aepo_envs.DatasetNotFoundError) as err:
        gym.make("AEPO/Bamboogle-v0")
    text = str(err.value)
    assert "data_path" in text and "AEPO_DATA_DIR" in text
