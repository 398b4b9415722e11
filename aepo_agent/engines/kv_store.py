"""Per-sequence KV kept from one ``generate`` call to the next, so a multi-turn rollout's next round prefills only
the tokens that are new (the tool result), not the whole context again. The token-level analogue of vLLM's
prefix cache: any cached sequence serves every new prefix it shares a head with, so clones and fresh samples of
the same prompt reuse it too."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class CachedSequence:
    """The keys/values of ``tokens`` (positions 0..len-1), per layer ``[kv_heads, len, head_dim]``."""

    tokens: np.ndarray
    layers: list[tuple[torch.Tensor, torch.Tensor]]


class PrefixKVStore:
    """Sequences the last call ended with; ``add`` collects this call's, ``commit`` makes them the store."""

    def __init__(self) -> None:
        self.sequences: list[CachedSequence] = []
        self._pending: list[CachedSequence] = []

    def longest_hit(self, head: list[int]) -> tuple[int, int]:
        """(index, length) of the cached sequence sharing the longest head with ``head``; (-1, 0) if none."""
        best, best_len = -1, 0
        if not head or not self.sequences:
            return best, best_len
        ids = np.asarray(head, dtype=np.int64)
        for index, cached in enumerate(self.sequences):
            limit = min(len(ids), len(cached.tokens))
            if limit <= best_len or ids[0] != cached.tokens[0]:
                continue
            differ = np.flatnonzero(ids[:limit] != cached.tokens[:limit])
            shared = int(differ[0]) if differ.size else limit
            if shared > best_len:
                best, best_len = index, shared
        return best, best_len

    def gather(self, hits: list[tuple[int, int]],
               device: torch.device) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """Left-padded batch KV per layer, and its 0/1 mask, for rows starting from cached heads (index, length)."""
        width = max(length for _, length in hits)
        first = next(self.sequences[i].layers for i, length in hits if length)
        mask = torch.zeros((len(hits), width), dtype=torch.long, device=device)
        layers = []
        for layer, (k0, v0) in enumerate(first):
            keys = k0.new_zeros((len(hits), k0.shape[0], width, k0.shape[2]))
            values = v0.new_zeros((len(hits), v0.shape[0], width, v0.shape[2]))
            for row, (index, length) in enumerate(hits):
                if length:
                    k, v = self.sequences[index].layers[layer]
                    keys[row, :, width - length :] = k[:, :length]
                    values[row, :, width - length :] = v[:, :length]
            layers.append((keys, values))
        for row, (_, length) in enumerate(hits):
            if length:
                mask[row, width - length :] = 1
        return layers, mask

    def add(self, tokens: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self._pending.append(CachedSequence(np.asarray(tokens, dtype=np.int64), layers))

    def commit(self) -> None:
        """The sequences added since the last commit replace the store (a rollout only extends its last round)."""
        self.sequences, self._pending = self._pending, []

    def clear(self) -> None:
        self.sequences, self._pending = [], []
