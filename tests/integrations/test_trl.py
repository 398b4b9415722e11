"""TRL adapters: tools as typed methods, stop-string restoration, and one real ``GRPOTrainer.train()`` step on
CalcQA with ``environment_factory`` and with ``rollout_func`` (CPU, our sandbox, our reward).

The training tests use SmolLM2's real tokenizer and chat template on a tiny random Llama (SmolLM2 itself works the
same and is what ``examples/trl_grpo.py`` trains, but costs minutes per step on a shared 2-core machine). Its turns are steered with transformers' own ``sequence_bias`` generation option
(passed through ``GRPOConfig.generation_kwargs``), so every rollout calls python, then answers the gold of task 0:
the sandbox must print 42 and the env's math reward must give 1 on task 0 and 0 on task 1.
"""

from __future__ import annotations

import inspect
import math
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import pytest
from char_tokenizer import CharTokenizer

import aepo_envs  # noqa: F401  (registers the ids)
from aepo_envs.integrations.trl import (
    TOOL_SYSTEM_PROMPT,
    EnvRollout,
    _cut,
    environment_factory,
    restore_stop,
    task_dataset,
    tool_method,
)

CALC = {"world_kwargs": {"n_questions": 4}, "tool_configs": {"python": {"timeout_s": 5}}}
SEARCH_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "The search query."},
        "top_k": {"type": "integer", "description": "How many pages to return (optional)."},
    },
    "required": ["query"],
}


def _sandbox_runs() -> None:
    env = gym.make("AEPO/CalcQA-v0", **CALC)
    try:
        out = env.get_wrapper_attr("tools")["python"]({"code": "print(6*7)"})
    finally:
        env.close()
    if out.text != "42":
        pytest.skip(f"the python sandbox does not run here: {out.text!r}")


# ------------------------------------------------------------------------------------------ unit
def test_tool_method_schema_round_trips_through_transformers() -> None:
    pytest.importorskip("transformers")
    from transformers.utils import get_json_schema

    class Holder:
        def _call_tool(self, name: str, args: dict[str, Any]) -> str:
            return f"{name}:{sorted(args.items())}"

    Holder.search = tool_method("search", "Search for information.\n  Returns pages.", SEARCH_SCHEMA)
    bound = Holder().search
    schema = get_json_schema(bound)["function"]
    assert schema["name"] == "search"
    assert schema["description"] == "Search for information. Returns pages."
    assert schema["parameters"]["required"] == ["query"]
    props = schema["parameters"]["properties"]
    assert props["query"] == {"type": "string", "description": "The search query."}
    assert props["top_k"]["description"] == "How many pages to return (optional)."
    assert "integer" in str(props["top_k"]["type"])
    assert list(inspect.signature(bound).parameters) == ["query", "top_k"]
    # Omitted optional args are not forwarded; unknown ones reach the env's own validation.
    assert bound(query="q") == "search:[('query', 'q')]"
    assert bound(query="q", bogus=1) == "search:[('bogus', 1), ('query', 'q')]"


@pytest.mark.parametrize("bad", ["reset", "get_reward", "answer", "_hidden", "class", "two words"])
def test_tool_method_rejects_names_trl_cannot_expose(bad: str) -> None:
    with pytest.raises(ValueError, match="rename"):
        tool_method(bad, "x", {"properties": {}})


def test_tool_method_rejects_argument_names_that_are_not_identifiers() -> None:
    with pytest.raises(ValueError, match="not a Python identifier"):
        tool_method("t", "x", {"properties": {"not ok": {"type": "string"}}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<python>print(1)", "<python>print(1)</python>"),  # stripped by an OpenAI-style stop
        ("<python>print(1)</python>", "<python>print(1)</python>"),  # kept: unchanged
        ("think <answer>\\boxed{3}", "think <answer>\\boxed{3}</answer>"),
        ("<python>a</python> then <answer>b", "<python>a</python> then <answer>b</answer>"),  # the open one
        ("<answer>x <python>y", "<answer>x <python>y</python>"),  # the tag opened last is the one cut
        ("no tags at all", "no tags at all"),
    ],
)
def test_restore_stop(text: str, expected: str) -> None:
    assert restore_stop(text, ("</python>", "</answer>")) == expected


def test_cut_keeps_the_first_stop_or_eos_and_names_the_finish() -> None:
    tok = CharTokenizer()
    ids = tok.encode("<python>1</python>tail")
    seg, lp, finish = _cut(tok, ids + [0, 0], [-0.5] * (len(ids) + 2), {0}, ("</python>",))
    assert tok.decode(seg) == "<python>1</python>" and finish == "stop" and len(lp) == len(seg)
    seg, _, finish = _cut(tok, tok.encode("abc") + [0, 0], [0.0] * 5, {0}, ("</python>",))
    assert seg == tok.encode("abc") + [0] and finish == "eos"  # the EOS is a model token, padding is not
    seg, _, finish = _cut(tok, tok.encode("abc"), [0.0] * 3, {0}, ("</python>",))
    assert tok.decode(seg) == "abc" and finish == "length"


def test_environment_factory_class_runs_the_real_tools_and_reward() -> None:
    _sandbox_runs()
    cls = environment_factory("AEPO/CalcQA-v0", **CALC)
    assert cls.__name__ == "CalcQAEnv"
    public = {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}
    assert public == {"python", "answer", "reset", "get_reward"}  # what TRL turns into tools (+ its hooks)
    tasks = list(aepo_envs.env_tasks(gym.make("AEPO/CalcQA-v0", **CALC)))
    env = cls()
    assert env.reset(prompt=[], task_id=tasks[1].task_id) is None and env.task_id == tasks[1].task_id
    assert env.python(code="print(6*7)") == "42"
    assert "Invalid arguments" in env.python(code="1", bogus=2)  # model mistakes are feedback, not exceptions
    assert env.answer(answer=tasks[1].answers[0]).startswith("Answer recorded")
    assert env.python(code="print(1)").startswith("The episode is over")
    assert env.get_reward() == 1.0 and env.tool_calls == {"python": 3, "answer": 1}

    assert env.reset(index=0) is None and env.task_id == tasks[0].task_id
    assert env.get_reward() == 0.0  # never answered: scored as ended from outside
    env.reset(index=0)
    env.answer(answer=f"\\boxed{{{tasks[0].answers[0]}}}")  # an answer already boxed is not boxed twice
    assert env.get_reward() == 1.0
    prompt = env.reset()  # no task in the row: the env picks one and returns its prompt for TRL to append
    assert prompt == f"{TOOL_SYSTEM_PROMPT}\n\n{tasks[0].question}" and env.task_id == tasks[0].task_id

    with pytest.raises(ValueError, match="action_format"):
        environment_factory("AEPO/CalcQA-v0", action_format="tags", **CALC)


def test_task_dataset_rows_are_the_env_messages() -> None:
    pytest.importorskip("datasets")
    data = task_dataset("AEPO/CalcQA-v0", limit=3, **CALC)
    assert data.column_names == ["prompt", "task_id"] and len(data) == 3
    tasks = list(aepo_envs.env_tasks(gym.make("AEPO/CalcQA-v0", **CALC)))
    assert data[2]["task_id"] == tasks[2].task_id
    assert data[2]["prompt"][-1] == {"role": "user", "content": tasks[2].question}


def test_module_imports_without_torch_or_trl() -> None:
    code = ("import sys, aepo_envs.integrations.trl; "
            "print(sorted(m for m in ('torch', 'trl', 'transformers', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_use_tool_chat_template_gives_smollm2_a_template_trl_parses(smol: str) -> None:
    from transformers import AutoTokenizer
    from trl.chat_template_utils import (
        add_response_schema,
        is_chat_template_prefix_preserving,
        parse_response,
        supports_tool_calling,
    )

    from aepo_envs.integrations.trl import use_tool_chat_template

    tok = AutoTokenizer.from_pretrained(smol)
    assert not supports_tool_calling(tok)  # SmolLM2's own template drops tool calls
    assert use_tool_chat_template(tok) is tok and supports_tool_calling(tok)
    assert is_chat_template_prefix_preserving(tok)  # TRL splices tool results by token concatenation
    before = tok.chat_template
    assert use_tool_chat_template(tok).chat_template == before  # already tool-capable: left alone
    add_response_schema(tok)
    ids = tok.encode('<tool_call>\n{"name": "python", "arguments": {"code": "print(1)"}}\n</tool_call><|im_end|>',
                     add_special_tokens=False)
    parsed = parse_response(tok, ids, prefix=tok.encode("<|im_start|>assistant\n", add_special_tokens=False))
    assert parsed["tool_calls"][0]["function"] == {"name": "python", "arguments": {"code": "print(1)"}}

    not_chatml = SimpleNamespace(chat_template=None, unk_token_id=0, convert_tokens_to_ids=lambda token: 0)
    with pytest.raises(ValueError, match="not ChatML"):
        use_tool_chat_template(not_chatml)


# ------------------------------------------------------------------------------------------ GRPOTrainer.train()
@pytest.fixture(scope="module")
def smol() -> str:
    pytest.importorskip("trl", reason="trl is not installed (pip install trl==1.16.0, in the dev extra)")
    from aepo_agent.models import cached_model_path, default_cache_dir

    path = cached_model_path("smollm2-135m-instruct")
    if path is None:
        pytest.skip(f"SmolLM2 is not in {default_cache_dir()}; run `aepo models fetch smollm2-135m-instruct`")
    _sandbox_runs()
    return path


def _tiny_model(tok: Any) -> Any:
    """A 2-layer random Llama over the tokenizer's vocabulary: real forward, backward and ``generate``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id)
    return LlamaForCausalLM(config)


def _forced(anchor: list[int], target: list[int], bias: float) -> dict[tuple[int, ...], float]:
    """``sequence_bias`` entries that make generation after ``anchor`` spell ``target`` token by token."""
    return {tuple(anchor + target[: k + 1]): bias for k in range(len(target))}


def _config(tmp_path: Any, bias: dict, **kw: Any) -> Any:
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, num_generations=2,
        gradient_accumulation_steps=1, learning_rate=1e-6, beta=0.0, temperature=1.0, use_cpu=True, bf16=False,
        report_to=[], logging_steps=1, save_strategy="no", shuffle_dataset=False, seed=0, activation_checkpointing=False,
        generation_kwargs={"sequence_bias": bias}, **kw,
    )


def _tool_tail(tok: Any, content: str) -> list[int]:
    """The last tokens TRL appends after a tool result ``content``, from the content on."""
    call = [{"type": "function", "function": {"name": "python", "arguments": {}}}]
    msgs = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "", "tool_calls": call},
            {"role": "tool", "name": "python", "content": content}]
    full = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
    return next(full[k:] for k in range(len(full) - 1, -1, -1) if content in tok.decode(full[k:]))


def test_grpo_train_step_with_environment_factory(smol: str, tmp_path: Any, monkeypatch: Any) -> None:
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from aepo_envs.integrations.trl import use_tool_chat_template

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    tok = use_tool_chat_template(AutoTokenizer.from_pretrained(smol))
    factory = environment_factory("AEPO/CalcQA-v0", **CALC)
    data = factory.dataset(limit=2)
    gold = aepo_envs.env_tasks(gym.make("AEPO/CalcQA-v0", **CALC))[0].answers[0]

    def enc(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    head = enc("<|im_start|>assistant\n")
    call_python = enc('<tool_call>\n{"name": "python", "arguments": {"code": "print(6*7)"}}\n</tool_call><|im_end|>')
    call_answer = enc(f'<tool_call>\n{{"name": "answer", "arguments": {{"answer": "{gold}"}}}}\n</tool_call><|im_end|>')
    bias = {**_forced(head, call_python, 100.0), **_forced(_tool_tail(tok, "42"), call_answer, 200.0),
            **_forced(_tool_tail(tok, "Answer recorded. The episode is over."), [tok.eos_token_id], 300.0)}
    trainer = GRPOTrainer(
        model=_tiny_model(tok), args=_config(tmp_path, bias, max_completion_length=128,
                                                                       max_tool_calling_iterations=2),
        train_dataset=data, processing_class=tok, environment_factory=factory,
    )
    trainer.train()

    envs = trainer.environments
    assert len(envs) == 4 and {e.task_id for e in envs} == set(data["task_id"])
    for e in envs:  # the env's tools ran: python in the sandbox, then the answer
        assert e.tool_calls == {"python": 1, "answer": 1}
        transcript = e.env.get_wrapper_attr("transcript")
        assert {"role": "tool", "content": "<tool_response>\n42\n</tool_response>"} in transcript
    expected = [1.0 if e.task_id == data["task_id"][0] else 0.0 for e in envs]  # the math reward vs the gold
    assert list(trainer._logs["rewards"]["CalcQAEnv"]) == expected
    logged = trainer.state.log_history[0]
    assert logged["rewards/CalcQAEnv/mean"] == pytest.approx(0.5)
    assert logged["tools/call_frequency"] == pytest.approx(2.0)
    assert logged["tools/failure_frequency"] == 0.0


def test_grpo_train_step_with_rollout_func(smol: str, tmp_path: Any, monkeypatch: Any) -> None:
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from aepo_envs.integrations.trl import env_reward

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    tok = AutoTokenizer.from_pretrained(smol)
    rollout = EnvRollout("AEPO/CalcQA-v0", **CALC)
    data = rollout.dataset(limit=2)
    gold = aepo_envs.env_tasks(gym.make("AEPO/CalcQA-v0", **CALC))[0].answers[0]

    def enc(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    result = " <result>\n42\n</result>"
    bias = {**_forced(enc("<|im_start|>assistant\n"), enc("<python>print(6*7)</python>"), 100.0),
            **_forced(enc(result), enc(f"<answer>\\boxed{{{gold}}}</answer>"), 200.0)}
    outputs: list[dict] = []

    def recorded(prompts: list, trainer: Any) -> dict:
        outputs.append(rollout(prompts, trainer))
        return outputs[-1]

    trainer = GRPOTrainer(
        model=_tiny_model(tok), reward_funcs=env_reward,
        args=_config(tmp_path, bias, max_completion_length=64), train_dataset=data, processing_class=tok,
        rollout_func=recorded,
    )
    trainer.train()
    rollout.close()

    (out,) = outputs
    assert len(out["completion_ids"]) == 4 and out["tool_calls"] == [1, 1, 1, 1]
    for ids, mask, lps in zip(out["completion_ids"], out["env_mask"], out["logprobs"], strict=True):
        assert len(ids) == len(mask) == len(lps)
        assert tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 0]) == result  # the env's text
        assert tok.decode(ids).endswith(f"<answer>\\boxed{{{gold}}}</answer>")
        assert all(lp <= 0.0 and not math.isnan(lp) for lp in lps)
    expected = [1.0 if ep["task_id"] == data["task_id"][0] else 0.0 for ep in rollout.episodes]
    assert out["env_reward"] == expected == list(trainer._logs["rewards"]["env_reward"])
    assert trainer.state.log_history[0]["rewards/env_reward/mean"] == pytest.approx(0.5)
    assert all({"role": "user", "content": result} in ep["transcript"] for ep in rollout.episodes)


@pytest.mark.parametrize("mode", ["tools", "rollout"])
def test_example_trains_one_step(smol: str, tmp_path: Any, mode: str) -> None:
    script = Path(__file__).resolve().parents[2] / "examples" / "trl_grpo.py"
    cmd = [sys.executable, str(script), "--mode", mode, "--steps", "1", "--prompts", "1", "--num-generations", "2",
           "--max-completion-length", "16", "--tasks", "2", "--output-dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"^step 1: env reward \d\.\d{3}, loss ", out.stdout, re.MULTILINE), out.stdout
