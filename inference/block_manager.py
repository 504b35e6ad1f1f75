"""Prefix-cache bookkeeping in pure Python: token blocks keyed by a chained hash, reference counted.

Usage::

    keys = block_keys(tokens, block_size=64, extra=("local/SmolLM2/int4", "tenant-a"))
    bm = BlockManager(num_blocks=128)
    hit = bm.acquire(keys)                     # block ids of the longest cached prefix
    placed = bm.allocate(keys[len(hit):])      # [(block id, needs filling)], may stop early when full
    ...                                        # copy KV into the blocks that need filling
    bm.release(hit + [b for b, _ in placed])   # tail blocks become the first to evict

A block's key hashes (parent key, its tokens, extra keys such as the model id and a tenant salt),
so one key names the whole prefix up to the block's end: equal keys mean equal tokens from
position 0 and the same model and tenant. Only full blocks get keys (a partial tail block would
change as the prompt grows). Lookup walks left to right and stops at the first miss.

A block whose reference count drops to 0 keeps its key and stays findable; it is evicted lazily,
least recently released first, only when a new block needs its slot. Blocks are released tail
first, so under pressure the ends of old prompts go before their shared beginnings.
This module knows nothing of tensors (the engine's :mod:`inference.prefix_cache` holds the KV).
"""
from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Sequence


def block_keys(tokens: Sequence[int], block_size: int, extra: Sequence[str] = ()) -> list[str]:
    """Chained keys of the full blocks of ``tokens``: key_i = H(key_{i-1}, block_i tokens, extra)."""
    if block_size < 1:
        raise ValueError("block_size must be >= 1")
    salt = hashlib.sha256()
    for part in extra:  # length-prefixed so ("ab", "c") and ("a", "bc") differ
        raw = part.encode()
        salt.update(struct.pack("<I", len(raw)) + raw)
    parent = salt.hexdigest()
    keys = []
    for start in range(0, len(tokens) - block_size + 1, block_size):
        block = tokens[start : start + block_size]
        h = hashlib.sha256(parent.encode())
        h.update(struct.pack(f"<{block_size}q", *block))
        parent = h.hexdigest()
        keys.append(parent)
    return keys


class BlockManager:
    """``num_blocks`` slots. Each slot is unused, or holds a keyed block with a reference count.

    Slots with count 0 are "free": never-used slots are taken first, then keyed free slots in
    least-recently-released order (their key is dropped at that moment).
    """

    def __init__(self, num_blocks: int):
        if num_blocks < 1:
            raise ValueError("num_blocks must be >= 1")
        self.num_blocks = num_blocks
        self._key_of: dict[int, str] = {}  # slot -> key, for slots holding a block
        self._slot_of: dict[str, int] = {}  # key -> slot
        self._refs = [0] * num_blocks
        self._never_used = list(range(num_blocks - 1, -1, -1))  # pop() gives 0, 1, 2, ...
        self._evictable: OrderedDict[int, None] = OrderedDict()  # keyed slots with count 0, LRU first

    @property
    def num_free_blocks(self) -> int:
        """Slots a new block could take now (unused, or keyed with no reference)."""
        return len(self._never_used) + len(self._evictable)

    @property
    def num_cached_blocks(self) -> int:
        return len(self._slot_of)

    def ref_count(self, block_id: int) -> int:
        return self._refs[block_id]

    def key_of(self, block_id: int) -> str | None:
        return self._key_of.get(block_id)

    def can_allocate(self, n: int) -> bool:
        return n <= self.num_free_blocks

    def match(self, keys: Sequence[str]) -> list[int]:
        """Slots of the longest run of ``keys`` from the start that are all cached (no side effect)."""
        out = []
        for key in keys:
            slot = self._slot_of.get(key)
            if slot is None:
                break
            out.append(slot)
        return out

    def acquire(self, keys: Sequence[str]) -> list[int]:
        """Like :meth:`match`, and take a reference on each slot returned."""
        slots = self.match(keys)
        for slot in slots:
            self._ref(slot)
        return slots

    def allocate(self, keys: Sequence[str]) -> list[tuple[int, bool]]:
        """A referenced slot for each key in order: (slot, True) for a new block the caller must fill,
        (slot, False) when the key is already cached. Stops early when no slot is free."""
        out = []
        for key in keys:
            slot = self._slot_of.get(key)
            if slot is not None:
                self._ref(slot)
                out.append((slot, False))
                continue
            if not self.num_free_blocks:
                break
            slot = self._take_slot()
            self._key_of[slot], self._slot_of[key] = key, slot
            self._refs[slot] = 1
            out.append((slot, True))
        return out

    def release(self, block_ids: Sequence[int]) -> None:
        """Drop one reference from each slot, last slot first (so tails are evicted before heads)."""
        for slot in reversed(block_ids):
            assert self._refs[slot] > 0, f"block {slot} released more often than referenced"
            self._refs[slot] -= 1
            if self._refs[slot] == 0:
                self._evictable[slot] = None  # most recently released at the end

    def _ref(self, slot: int) -> None:
        if self._refs[slot] == 0:
            self._evictable.pop(slot, None)
        self._refs[slot] += 1

    def _take_slot(self) -> int:
        if self._never_used:
            return self._never_used.pop()
        slot, _ = self._evictable.popitem(last=False)  # least recently released
        del self._slot_of[self._key_of.pop(slot)]
        return slot

    def check_invariants(self) -> None:
        """Assert the internal bookkeeping is consistent (for tests)."""
        assert len(self._key_of) == len(self._slot_of)
        assert all(self._slot_of[k] == s for s, k in self._key_of.items())
        assert all(self._refs[s] == 0 and s in self._key_of for s in self._evictable)
        assert not set(self._never_used) & set(self._key_of)
        keyed_free = {s for s in self._key_of if self._refs[s] == 0}
        assert keyed_free == set(self._evictable)
        assert all(r >= 0 for r in self._refs)
        assert all(self._refs[s] == 0 for s in self._never_used)
