"""The prefix-cache block manager, pure Python (no torch): keys, lookup, reference counts, eviction.

Besides the hand-written cases, a random walk of 3,000 operations is checked step by step
against a plain reference model of the same rules.
"""
from __future__ import annotations

import random
import sys

import pytest

from inference.block_manager import BlockManager, block_keys


def test_module_needs_no_torch() -> None:
    import importlib

    had_torch = "torch" in sys.modules
    mod = importlib.import_module("inference.block_manager")
    assert "torch" not in vars(mod)
    if not had_torch:
        assert "torch" not in sys.modules


def test_only_full_blocks_get_keys() -> None:
    assert len(block_keys(list(range(10)), 4)) == 2
    assert len(block_keys(list(range(12)), 4)) == 3
    assert block_keys([1, 2, 3], 4) == []
    with pytest.raises(ValueError):
        block_keys([1], 0)


def test_keys_chain_the_whole_prefix() -> None:
    a = block_keys([1, 2, 3, 4, 5, 6, 7, 8], 4)
    b = block_keys([9, 2, 3, 4, 5, 6, 7, 8], 4)  # same second block, different first
    assert a[1] != b[1] and a[0] != b[0]
    assert block_keys([1, 2, 3, 4, 5, 6, 7, 8, 9], 4) == a  # a longer prompt keeps the same keys
    assert block_keys([1, 2, 3, 4, 5, 6, 7, 0], 4)[0] == a[0]


def test_extra_keys_separate_models_and_tenants() -> None:
    toks = list(range(8))
    base = block_keys(toks, 4, ("m", "t1"))
    assert block_keys(toks, 4, ("m", "t2")) != base
    assert block_keys(toks, 4, ("m2", "t1")) != base
    assert block_keys(toks, 4, ("m", "t1")) == base
    assert block_keys(toks, 4, ("ab", "c")) != block_keys(toks, 4, ("a", "bc"))  # parts are delimited


def test_token_values_are_not_confused_across_widths() -> None:
    assert block_keys([1, 256], 2) != block_keys([256, 1], 2)
    assert block_keys([70000, 0], 2) != block_keys([0, 70000], 2)


def test_lookup_stops_at_first_miss() -> None:
    bm = BlockManager(8)
    keys = block_keys(list(range(16)), 4)
    placed = bm.allocate(keys)
    assert [new for _, new in placed] == [True] * 4
    other = block_keys([0, 1, 2, 3, 99, 5, 6, 7, 8, 9, 10, 11], 4)  # differs in block 1
    assert bm.match(other) == [placed[0][0]]
    assert bm.match(keys[:3]) == [b for b, _ in placed[:3]]
    assert bm.match(["nope", *keys]) == []


def test_refcounts_and_lazy_eviction() -> None:
    bm = BlockManager(3)
    k1 = block_keys(list(range(12)), 4)  # 3 blocks
    ids = [b for b, _ in bm.allocate(k1)]
    assert [bm.ref_count(b) for b in ids] == [1, 1, 1] and bm.num_free_blocks == 0
    again = bm.acquire(k1)
    assert again == ids and bm.ref_count(ids[0]) == 2
    bm.release(again)
    bm.release(ids)
    assert bm.num_free_blocks == 3 and bm.num_cached_blocks == 3  # still findable after release
    assert bm.match(k1) == ids
    # a new prompt needs 2 slots: the tail blocks of the old prompt go first (released first)
    k2 = block_keys(list(range(100, 108)), 4)
    new = bm.allocate(k2)
    assert {b for b, _ in new} == {ids[2], ids[1]}
    assert bm.match(k1) == [ids[0]]  # the shared beginning survives
    bm.check_invariants()


def test_allocate_stops_when_full_and_reuses_cached_keys() -> None:
    bm = BlockManager(2)
    k = block_keys(list(range(16)), 4)
    got = bm.allocate(k)
    assert len(got) == 2 and bm.num_free_blocks == 0
    more = bm.allocate(k[:1])  # already cached: referenced again, nothing to fill
    assert more == [(got[0][0], False)] and bm.ref_count(got[0][0]) == 2
    bm.check_invariants()


def test_acquired_blocks_are_never_evicted() -> None:
    bm = BlockManager(2)
    k = block_keys(list(range(8)), 4)
    held = [b for b, _ in bm.allocate(k)]
    assert bm.allocate(block_keys(list(range(50, 58)), 4)) == []
    assert bm.match(k) == held


def test_over_release_is_an_invariant_violation() -> None:
    bm = BlockManager(1)
    (slot, _), = bm.allocate(block_keys([1, 2], 2))
    bm.release([slot])
    with pytest.raises(AssertionError):
        bm.release([slot])


class ReferenceModel:
    """The same rules written as plainly as possible: a list of slots and a release clock."""

    def __init__(self, n: int):
        self.key = [None] * n
        self.refs = [0] * n
        self.released_at = [None] * n
        self.used = [False] * n
        self.clock = 0

    def match(self, keys):
        out = []
        for k in keys:
            if k not in self.key:
                break
            out.append(self.key.index(k))
        return out

    def free(self):
        return [s for s in range(len(self.key)) if self.refs[s] == 0]

    def take(self):
        unused = [s for s in range(len(self.key)) if not self.used[s]]
        if unused:
            return unused[0]
        return min((s for s in self.free()), key=lambda s: self.released_at[s])

    def allocate(self, keys):
        out = []
        for k in keys:
            if k in self.key:
                s = self.key.index(k)
                self.refs[s] += 1
                out.append((s, False))
                continue
            if not self.free():
                break
            s = self.take()
            self.key[s], self.refs[s], self.used[s] = k, 1, True
            out.append((s, True))
        return out

    def release(self, ids):
        for s in reversed(ids):
            self.refs[s] -= 1
            if self.refs[s] == 0:
                self.clock += 1
                self.released_at[s] = self.clock


@pytest.mark.parametrize("seed", range(3))
def test_random_walk_matches_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    bm, ref = BlockManager(6), ReferenceModel(6)
    prompts = [[rng.randrange(4) for _ in range(rng.randrange(2, 20))] for _ in range(12)]
    held: list[list[int]] = []
    for _ in range(1000):
        op = rng.random()
        if op < 0.5 or not held:
            keys = block_keys(rng.choice(prompts), 2, ("m",))
            hit = bm.acquire(keys)
            assert hit == ref.match(keys)
            for s in hit:
                ref.refs[s] += 1
            placed = bm.allocate(keys[len(hit):])
            assert placed == ref.allocate(keys[len(hit):])
            held.append(hit + [s for s, _ in placed])
        else:
            ids = held.pop(rng.randrange(len(held)))
            bm.release(ids)
            ref.release(ids)
        assert [bm.ref_count(s) for s in range(6)] == ref.refs
        assert [bm.key_of(s) for s in range(6)] == ref.key
        assert bm.num_free_blocks == sum(1 for s in range(6) if ref.refs[s] == 0)
        bm.check_invariants()
