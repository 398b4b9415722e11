"""A characters-as-token-ids tokenizer for scripted engines (no model)."""

from __future__ import annotations


class CharTokenizer:
    """Characters as token ids: enough tokenizer for the rollout's and trainer's bookkeeping."""

    eos_token_id = 0
    pad_token_id = 0

    def __len__(self) -> int:
        return 256

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True):
        return self.encode("".join(m["content"][:20] for m in messages))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [min(ord(c), 255) for c in text]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids)
