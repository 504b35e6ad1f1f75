"""The tiered chunk store: codec, budgets, policies, tiers (RAM, disk, real Redis), hints, counters."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from inference.chunk_kv import ChunkKV, ChunkStore, chunk_key
from inference.chunk_store import StoreConfig, TieredChunkStore
from inference.chunk_store.codec import CorruptChunk, decode, encode, relative_error
from inference.chunk_store.policies import EntryStats, make_policy
from inference.chunk_store.trace import replay, zipf_trace
from inference.errors import InvalidParams
from tests.helpers import ROOT


def make_chunk(seed: int, n_tokens: int = 16, layers: int = 2, heads: int = 3, dim: int = 8) -> ChunkKV:
    g = torch.Generator().manual_seed(seed)
    tokens = tuple(range(seed, seed + n_tokens))
    shape = (layers, heads, n_tokens, dim)
    return ChunkKV(key=chunk_key("m", "fp32", tokens), tokens=tokens, k=torch.randn(shape, generator=g),
                   v=torch.randn(shape, generator=g), meta={"rope": "absolute"})


def nbytes(n_tokens: int = 16) -> int:
    return make_chunk(0, n_tokens).nbytes


# ---- codec -----------------------------------------------------------------------------------


def test_raw_codec_roundtrip_is_exact() -> None:
    c = make_chunk(1)
    back = decode(encode(c), expected_key=c.key)
    assert back.tokens == c.tokens and back.meta == c.meta
    assert torch.equal(back.k, c.k) and torch.equal(back.v, c.v)


@pytest.mark.parametrize(("codec", "bound", "size"), [("fp16", 1e-3, 0.55), ("int8", 0.02, 0.3)])
def test_lossy_codecs_are_small_and_bounded(codec: str, bound: float, size: float) -> None:
    c = make_chunk(2, n_tokens=64, dim=64)  # SmolLM2's head_dim: scales are a small overhead
    err = relative_error(c, codec)
    assert 0 < err["k"] < bound and 0 < err["v"] < bound
    assert len(encode(c, codec)) < size * len(encode(c))
    assert decode(encode(c, codec)).meta["kv_codec"] == codec


def test_int8_keeps_an_outlier_channel_from_crushing_the_rest() -> None:
    c = make_chunk(3, n_tokens=64)
    c.k[:, :, :, 0] *= 100  # one K channel with outliers, as real keys have
    err = relative_error(c, "int8")
    rest = c.k[..., 1:]
    back = decode(encode(c, "int8")).k[..., 1:]
    assert float((back - rest).norm() / rest.norm()) < 0.02  # per-channel scales: other channels unharmed
    assert err["k"] < 0.02


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_bytes_are_detected(damage: str) -> None:
    blob = bytearray(encode(make_chunk(4)))
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob[len(blob) // 2] ^= 0x01
    else:
        blob = bytearray()
    with pytest.raises(CorruptChunk):
        decode(bytes(blob))


def test_decode_refuses_a_chunk_under_another_key() -> None:
    with pytest.raises(CorruptChunk):
        decode(encode(make_chunk(5)), expected_key=make_chunk(6).key)


def test_bad_input_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidParams):
        encode(make_chunk(1), "int4")
    with pytest.raises(InvalidParams):
        TieredChunkStore(StoreConfig(ram_bytes=0))
    with pytest.raises(InvalidParams):
        TieredChunkStore(StoreConfig(policy="mru"))
    store = TieredChunkStore(StoreConfig())
    with pytest.raises(InvalidParams):
        store.get("../etc/passwd")
    with pytest.raises(InvalidParams):
        store.set_reuse(make_chunk(1).key, 1.5)
    c = make_chunk(1)
    with pytest.raises(InvalidParams):
        store.put(ChunkKV(c.key, c.tokens[:-1], c.k, c.v))  # tokens and tensors disagree
    assert store.get(c.key) is None  # nothing half-stored


# ---- policies --------------------------------------------------------------------------------


def entry(key: str, last: int, hits: int = 0, reuse: float | None = None, n_tokens: int = 10) -> EntryStats:
    return EntryStats(key, nbytes=100, n_tokens=n_tokens, created=0, last_access=last, hits=hits,
                      freq=1.0 + hits, reuse=reuse)


def victim(policy: str, entries: list[EntryStats], now: int = 100) -> str:
    p = make_policy(policy)
    return min(entries, key=lambda e: p.priority(e, now)).key


def test_policies_pick_their_victims() -> None:
    old_hot, new_cold = entry("old_hot", last=10, hits=9), entry("new_cold", last=90)
    assert victim("lru", [old_hot, new_cold]) == "old_hot"
    assert victim("lfu", [old_hot, new_cold]) == "new_cold"
    assert victim("value", [old_hot, new_cold]) == "new_cold"
    # the caller's predicted reuse rescues a cold chunk under the value-aware policy only
    hinted = entry("hinted", last=10, reuse=1.0)
    assert victim("value", [hinted, entry("plain", last=90)]) == "plain"
    assert victim("lru", [hinted, entry("plain", last=90)]) == "hinted"
    # per byte: more tokens saved in the same bytes (a quantized copy) is worth more
    assert victim("value", [entry("dense", 50, n_tokens=20), entry("sparse", 50, n_tokens=10)]) == "sparse"


def test_value_policy_decays_with_age() -> None:
    p = make_policy("value", half_life=10)
    e = entry("e", last=0, hits=7)
    assert p.priority(e, 10)[0] == pytest.approx(p.priority(e, 0)[0] / 2)


# ---- budgets, tiers, hints -------------------------------------------------------------------


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir())


@pytest.mark.parametrize("policy", ["lru", "lfu", "value"])
def test_budgets_are_never_exceeded(tmp_path: Path, policy: str) -> None:
    rng = random.Random(0)
    chunks = [make_chunk(i, n_tokens=rng.randint(4, 40)) for i in range(60)]
    ram_budget, disk_budget = 6 * nbytes(), 10 * nbytes()
    store = TieredChunkStore(StoreConfig(ram_bytes=ram_budget, disk_dir=tmp_path, disk_bytes=disk_budget,
                                         policy=policy))
    for step in range(400):
        c = rng.choice(chunks)
        if step % 37 == 0:
            store.pin(c.key, rng.random() < 0.5)
        if store.get(c.key) is None:
            store.put(c, reuse=rng.random())
        assert store.ram.index.nbytes <= ram_budget
        assert sum(x.nbytes for x in store.ram.chunks()) == store.ram.index.nbytes
        assert folder_bytes(tmp_path) == store.disk.index.nbytes <= disk_budget
    s = store.stats()
    assert s["tiers"]["ram"]["evictions"] > 0 and s["tiers"]["disk"]["evictions"] > 0


def test_pinned_chunks_stay_and_refuse_what_cannot_fit() -> None:
    store = TieredChunkStore(StoreConfig(ram_bytes=2 * nbytes(), policy="lru"))
    a, b, c = make_chunk(1), make_chunk(2), make_chunk(3)
    store.pin(a.key)  # a hint given before the chunk arrives is applied when it does
    store.put(a)
    store.put(b)
    store.put(c)  # evicts b (LRU among the unpinned), never a
    assert store.get(a.key) is not None and store.get(b.key) is None
    store.pin(c.key)
    store.put(make_chunk(4))  # RAM is all pinned: refused, nothing evicted, budget kept
    assert store.stats()["tiers"]["ram"]["rejected"] == 1
    assert store.get(a.key) is not None and store.get(c.key) is not None
    store.pin(a.key, False)
    store.put(make_chunk(5))
    assert store.get(a.key) is None


def test_ram_eviction_demotes_to_disk_and_disk_hits_promote(tmp_path: Path) -> None:
    store = TieredChunkStore(StoreConfig(ram_bytes=2 * nbytes(), disk_dir=tmp_path, policy="lru"))
    chunks = [make_chunk(i) for i in range(4)]
    for c in chunks:
        store.put(c)
    assert len(list(tmp_path.glob("*.ekv"))) == 2  # the two evicted from RAM, nothing dropped
    got = store.get(chunks[0].key)
    assert got is not None and torch.equal(got.k, chunks[0].k)
    assert chunks[0].key in store.ram  # promoted
    s = store.stats()
    assert s["tiers"]["disk"]["hits"] == 1 and s["tiers"]["ram"]["hits"] == 0
    assert s["tiers"]["ram"]["misses"] == 1 and s["tiers"]["disk"]["misses"] == 0 and s["misses"] == 0


def test_ram_copies_chunks_that_are_views_of_a_larger_cache() -> None:
    big = torch.randn(2, 3, 1000, 8)
    c = make_chunk(1)
    view = ChunkKV(c.key, c.tokens, big[:, :, :16], big[:, :, 16:32])
    store = TieredChunkStore(StoreConfig())
    store.put(view)
    got = store.get(c.key)
    assert torch.equal(got.k, big[:, :, :16]) and got.k.untyped_storage().nbytes() == got.k.nbytes


def test_chunks_survive_a_restart(tmp_path: Path) -> None:
    cfg = StoreConfig(ram_bytes=100 * nbytes(), disk_dir=tmp_path, disk_codec="int8")
    first = TieredChunkStore(cfg)
    chunks = [make_chunk(i) for i in range(5)]
    for c in chunks:
        first.put(c)
    first.close()  # demotes RAM to disk
    second = TieredChunkStore(cfg)
    for c in chunks:
        got = second.get(c.key)
        assert got is not None and got.tokens == c.tokens and got.meta["kv_codec"] == "int8"
        assert float((got.k - c.k).norm() / c.k.norm()) < 0.02
    assert second.stats()["tiers"]["disk"]["hits"] == 5


def test_one_store_owns_a_folder_at_a_time(tmp_path: Path) -> None:
    cfg = StoreConfig(disk_dir=tmp_path)
    with TieredChunkStore(cfg) as first:
        first.put(make_chunk(1))
        with pytest.raises(InvalidParams):
            TieredChunkStore(cfg)
    with TieredChunkStore(cfg) as second:  # released by close (the with block)
        assert second.get(make_chunk(1).key) is not None


def test_write_through_disk_needs_no_close(tmp_path: Path) -> None:
    cfg = StoreConfig(disk_dir=tmp_path, disk_write_through=True)
    c = make_chunk(1)
    TieredChunkStore(cfg).put(c)
    assert torch.equal(TieredChunkStore(cfg).get(c.key).v, c.v)


def test_a_truncated_file_is_discarded_and_counted(tmp_path: Path) -> None:
    cfg = StoreConfig(ram_bytes=nbytes(), disk_dir=tmp_path, disk_write_through=True)
    store = TieredChunkStore(cfg)
    a, b = make_chunk(1), make_chunk(2)
    store.put(a)
    store.put(b)  # a leaves RAM, stays on disk
    path = tmp_path / f"{a.key}.ekv"
    path.write_bytes(path.read_bytes()[:-100])  # a torn write
    assert store.get(a.key) is None
    assert not path.exists()
    s = store.stats()
    assert s["tiers"]["disk"]["corrupt"] == 1 and s["misses"] == 1
    assert store.get(b.key) is not None  # the others are untouched


def test_restart_drops_stray_temporaries_and_unreadable_files(tmp_path: Path) -> None:
    cfg = StoreConfig(disk_dir=tmp_path, disk_write_through=True)
    c = make_chunk(1)
    TieredChunkStore(cfg).put(c)
    (tmp_path / f".{c.key}.ekv.123.tmp").write_bytes(b"half")
    (tmp_path / f"{make_chunk(2).key}.ekv").write_bytes(b"garbage")
    store = TieredChunkStore(cfg)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock") == [f"{c.key}.ekv"]
    assert store.stats()["tiers"]["disk"]["corrupt"] == 1 and store.get(c.key) is not None


def test_counters_tokens_saved_and_recompute_fraction() -> None:
    store = TieredChunkStore(StoreConfig())
    a = make_chunk(1, n_tokens=30)
    assert store.get(a.key) is None
    store.put(a)  # computed after the miss: 30 tokens recomputed
    for _ in range(3):
        store.get(a.key)
    store.record_recompute(10)  # the engine recomputed 10 tokens of a found chunk (CacheBlend)
    s = store.stats()
    assert s["tokens_saved"] == 90 and s["tokens_recomputed"] == 40 and s["misses"] == 1
    assert s["recompute_fraction"] == pytest.approx(40 / 130) and s["hit_rate"] == pytest.approx(0.75)
    assert s["tiers"]["ram"]["nbytes"] == a.nbytes and s["tiers"]["ram"]["n_chunks"] == 1
    store.discard(a.key)
    assert store.get(a.key) is None


def test_value_aware_beats_lru_on_a_skewed_trace() -> None:
    trace = zipf_trace(n_chunks=200, n_requests=8000, seed=1)
    budget = int(0.1 * trace.total_tokens * 64)  # synthetic chunks: 64 bytes per token
    rates = {p: replay(TieredChunkStore(StoreConfig(ram_bytes=budget, policy=p)), trace)
             for p in ("lru", "lfu", "value")}
    assert rates["value"]["hit_rate"] >= rates["lru"]["hit_rate"]
    assert rates["value"]["token_hit_rate"] >= rates["lru"]["token_hit_rate"]
    assert rates["value"]["hit_rate"] >= rates["lfu"]["hit_rate"]


# ---- Redis (the real server on 127.0.0.1:6379) -------------------------------------------------


@pytest.fixture()
def redis_prefix():
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379)
    client.ping()
    prefix = f"engram-test:kv:{uuid.uuid4().hex}"
    yield client, prefix
    names = list(client.scan_iter(match=f"{prefix}:*"))
    if names:
        client.delete(*names)


WRITER = """
import sys, redis, torch
sys.path.insert(0, {root!r})
from inference.chunk_store import StoreConfig, TieredChunkStore
from tests.inference.test_chunk_store import make_chunk
store = TieredChunkStore(StoreConfig(redis_client=redis.Redis(host="127.0.0.1", port=6379),
                                     redis_prefix={prefix!r}, redis_codec="raw"))
for i in range(3):
    store.put(make_chunk(i))
print(store.stats()["tiers"]["redis"]["puts"])
"""


def test_two_processes_share_chunks_through_redis(redis_prefix, tmp_path: Path) -> None:
    client, prefix = redis_prefix
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", WRITER.format(root=str(ROOT), prefix=prefix)],
                         capture_output=True, text=True, env=env, timeout=300, check=True)
    assert out.stdout.strip() == "3"
    reader = TieredChunkStore(StoreConfig(redis_client=client, redis_prefix=prefix, disk_dir=tmp_path))
    for i in range(3):
        got = reader.get(make_chunk(i).key)
        assert got is not None and torch.equal(got.k, make_chunk(i).k)  # raw codec: exact
    s = reader.stats()
    assert s["tiers"]["redis"]["hits"] == 3 and s["tiers"]["redis"]["n_chunks"] == 3
    assert s["tiers"]["ram"]["misses"] == 3 and s["tiers"]["disk"]["misses"] == 3
    assert reader.get(make_chunk(0).key) is not None and reader.stats()["tiers"]["ram"]["hits"] == 1


def test_redis_budget_is_shared_and_kept(redis_prefix) -> None:
    client, prefix = redis_prefix
    size = [len(encode(make_chunk(i), "int8")) for i in range(8)]
    budget = sum(size[5:])  # room for the three newest
    cfg = StoreConfig(ram_bytes=nbytes(), redis_client=client, redis_prefix=prefix, redis_bytes=budget)
    a, b = TieredChunkStore(cfg), TieredChunkStore(cfg)
    for i in range(8):
        (a if i % 2 else b).put(make_chunk(i))
        assert a.redis.nbytes <= budget
    assert a.redis.n_chunks() == 3
    assert b.get(make_chunk(7).key) is not None  # the newest survive, whoever wrote them
    assert b.get(make_chunk(0).key) is None
    a.discard(make_chunk(7).key)
    assert a.redis.n_chunks() == 2 and a.redis.nbytes == size[5] + size[6]


def test_corrupt_redis_value_is_discarded(redis_prefix) -> None:
    client, prefix = redis_prefix
    store = TieredChunkStore(StoreConfig(ram_bytes=nbytes(), redis_client=client, redis_prefix=prefix))
    a = make_chunk(1)
    store.put(a)
    store.put(make_chunk(2))  # a leaves RAM
    data_key = f"{prefix}:c:{a.key}"
    client.set(data_key, client.get(data_key)[:-5])
    assert store.get(a.key) is None and store.stats()["tiers"]["redis"]["corrupt"] == 1
    assert not client.exists(data_key)


# ---- one contract, every backend -------------------------------------------------------------


@pytest.fixture(params=["ram", "disk", "redis"])
def backend(request, tmp_path: Path):
    """A store whose chunks can only live in one tier (the others are off or too small)."""
    if request.param == "ram":
        yield "ram", TieredChunkStore(StoreConfig())
    elif request.param == "disk":
        yield "disk", TieredChunkStore(StoreConfig(ram_bytes=1, disk_dir=tmp_path, disk_codec="raw"))
    else:
        client, prefix = request.getfixturevalue("redis_prefix")
        yield "redis", TieredChunkStore(StoreConfig(ram_bytes=1, redis_client=client, redis_prefix=prefix,
                                                    redis_codec="raw"))


def test_store_contract(backend) -> None:
    tier, store = backend
    _: ChunkStore = store  # the engine's seam (a typing.Protocol)
    assert all(callable(getattr(store, m)) for m in ("get", "put", "pin", "set_reuse", "discard"))
    a, b = make_chunk(1), make_chunk(2)
    store.put(a, reuse=0.9)
    store.put(b)
    got = store.get(a.key)
    assert got is not None and got.tokens == a.tokens and torch.equal(got.k, a.k) and torch.equal(got.v, a.v)
    assert got.meta == a.meta
    assert store.get(make_chunk(3).key) is None
    store.pin(b.key)
    store.set_reuse(b.key, 0.1)
    assert store.get(b.key) is not None
    store.discard(a.key)
    assert store.get(a.key) is None
    s = store.stats()
    assert s["tiers"][tier]["hits"] == 2 and s["misses"] == 2 and s["tokens_saved"] == 32
