"""A conversation run under a KV budget: the cache never holds more than ``budget`` slots.

Tokens are fed in pieces that fit the free room; when the cache is full it is compacted to
``budget - free`` slots with the configured policy (see :mod:`compact` for the position
convention). With ``budget`` at least the conversation's length nothing is ever evicted and the
logits are those of the plain model.

The cache never exceeds the budget, so a prompt longer than the free room is compacted while it
is prefilled: SnapKV's window is then the last queries fed before each compaction, not only the
prompt's end. To compress once after a whole prompt, as the SnapKV paper does, use a budget that
holds the prompt and call ``compact(target)`` after feeding it.

Usage::

    s = BudgetedSession(model, SeqEvictionConfig(budget=256, policy="snapkv"))
    logits = s.feed(prompt_ids)          # [V] after the last token
    reply = s.generate(64, eos={2})      # greedy; s.position is the true next position
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

import torch

from inference.errors import ContextOverflow, InvalidParams
from inference.kv_evict.compact import compact
from inference.kv_evict.policies import SeqEvictionConfig, make_observer
from inference.kv_evict.select import select_keep
from inference.model import Transformer


class BudgetedSession:
    def __init__(self, model: Transformer, cfg: SeqEvictionConfig):
        cfg.validate()
        self.model, self.cfg = model, cfg
        self.cache = model.new_cache(cfg.budget)
        self.cache.observer = make_observer(cfg, model.cfg)
        self.evictions = 0  # compactions done
        self.evicted_slots = 0

    @property
    def position(self) -> int:
        """The true position of the next token (tokens fed so far)."""
        return self.cache.length + self.cache.pos_offset

    def feed(self, tokens: Sequence[int], all_logits: bool = False) -> torch.Tensor:
        """Run ``tokens``; returns the logits after the last one [V], or after each one [T, V]."""
        if not tokens:
            raise InvalidParams("nothing to feed")
        if self.position + len(tokens) > self.model.cfg.context_length:
            raise ContextOverflow(f"position {self.position + len(tokens)} is past the model context "
                                  f"of {self.model.cfg.context_length} (kept keys are never re-rotated)")
        out, i = [], 0
        while i < len(tokens):
            if self.cache.length == self.cfg.budget:
                self.compact(self.cfg.budget - self.cfg.n_free)
            piece = tokens[i : i + self.cfg.budget - self.cache.length]
            logits = self.model(torch.tensor([list(piece)]), self.cache.length, self.cache, last_only=not all_logits)
            out.append(logits[0])
            i += len(piece)
        return torch.cat(out) if all_logits else out[-1][-1]

    def compact(self, target: int) -> None:
        """Keep ``target`` slots chosen by the policy (all of them if the cache holds no more)."""
        c, n = self.model.cfg, self.cache.length
        scores = self._scores() if target < n else None
        keep = select_keep(n, target, c.n_layers, c.n_kv_heads, self.cfg.n_sink, self.cfg.n_recent, scores)
        if target < n:
            self.evictions += 1
            self.evicted_slots += n - target
        compact(self.cache, keep)

    def _scores(self) -> torch.Tensor | None:
        obs = self.cache.observer
        if obs is None:
            return None
        n = self.cache.length
        return torch.stack([obs.scores(layer, self.cache.k[layer][:, :, :n]) for layer in range(len(self.cache.k))])

    def generate(self, max_new: int, eos: Collection[int] = (), first_logits: torch.Tensor | None = None) -> list[int]:
        """Greedy tokens after what was fed (``first_logits``: the last ``feed``'s result)."""
        if first_logits is None:
            raise InvalidParams("feed a prompt first and pass its logits")
        out, logits = [], first_logits
        for _ in range(max_new):
            tok = int(logits.argmax())
            if tok in eos:
                break
            out.append(tok)
            logits = self.feed([tok])
        return out
