"""Chunk KV reuse on the real SmolLM2: moving K by RoPE, and selective recompute (CacheBlend).

Exactness claims run in fp32; int4 (bf16 activations) gets tolerance checks.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inference.blend import BlendConfig, _stages, blend_prefill
from inference.chunk_kv import chunk_key
from inference.chunk_reuse import compute_chunk_kv, place_chunk
from inference.errors import InvalidParams
from tests.inference import smollm


@pytest.fixture(scope="module")
def fp32():
    smollm.require_model()
    return smollm.model("fp32")


@pytest.fixture(scope="module")
def segments():
    """(prefix, [chunk, chunk], suffix) token ids, each segment tokenised on its own."""
    smollm.require_model()
    tok = smollm.tokenizer()
    paras = smollm.hotpot_text(4)
    prefix = tok.encode("<|im_start|>system\nAnswer from the documents.\n")
    chunks = [tok.encode(p[:400] + "\n") for p in paras[:2]]
    suffix = tok.encode("<|im_end|>\n<|im_start|>user\nWho is mentioned first?<|im_end|>\n<|im_start|>assistant\n")
    return prefix, chunks, suffix


def alone_at(model, tokens: list[int], start: int) -> torch.Tensor:  # noqa: ANN001
    """Every layer's K of ``tokens`` computed alone (no earlier keys) at positions start.. -> [L, H_kv, n, D]."""
    n, act = len(tokens), model.act_dtype
    h = model.embed(torch.tensor([tokens]))
    ks = []
    with torch.inference_mode():
        for block in model.blocks:
            q, k, v = block.project(h, model.rotations(start + n)[start : start + n], act)
            ks.append(k[0])
            o = F.scaled_dot_product_attention(q, k, v.float(), is_causal=True, enable_gqa=True)
            h = block.mix(h, o, act)
    return torch.stack(ks)


def test_moved_k_equals_k_computed_at_the_new_position(fp32, segments) -> None:
    chunk = segments[1][0]
    kv = compute_chunk_kv(fp32, chunk, "k")
    assert kv.k.shape == (30, 3, len(chunk), 64) and kv.meta["rope_start"] == 0
    torch.testing.assert_close(alone_at(fp32, chunk, 0), kv.k, atol=1e-4, rtol=1e-4)  # the helper is faithful
    for start in (7, 1000):
        cache = fp32.new_cache(start + len(chunk))
        place_chunk(fp32, cache, kv, start)
        moved = torch.stack([cache.k[i][0, :, start:] for i in range(30)])
        torch.testing.assert_close(moved, alone_at(fp32, chunk, start), atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(cache.v[5][0, :, start:], kv.v[5])


def _assemble(model, segments, kvs=None):  # noqa: ANN001, ANN202
    """A cache with the prefix prefilled and each chunk's stored KV placed after it."""
    prefix, chunks, suffix = segments
    n = len(prefix) + sum(map(len, chunks)) + len(suffix)
    cache = model.new_cache(n)
    model(torch.tensor([prefix]), 0, cache)
    kvs = kvs or [compute_chunk_kv(model, c, chunk_key("m", "q", c)) for c in chunks]
    pos = len(prefix)
    for kv in kvs:
        place_chunk(model, cache, kv, pos)
        pos += kv.n_tokens
    rest = [t for c in chunks for t in c] + suffix
    cached = torch.tensor([True] * (len(rest) - len(suffix)) + [False] * len(suffix))
    return cache, torch.tensor([rest]), cached, kvs


def test_ratio_one_equals_full_prefill(fp32, segments) -> None:
    prefix, chunks, suffix = segments
    ids = prefix + [t for c in chunks for t in c] + suffix
    full_cache = fp32.new_cache(len(ids))
    full = fp32(torch.tensor([ids]), 0, full_cache)
    cache, rest, cached, _ = _assemble(fp32, segments)
    got, n = blend_prefill(fp32, cache, rest, len(prefix), cached, BlendConfig(ratio=1.0))
    assert n == int(cached.sum())
    torch.testing.assert_close(got, full, atol=2e-4, rtol=0)
    for layer in (0, 15, 29):  # and the blended cache is the full prefill's cache
        torch.testing.assert_close(cache.k[layer], full_cache.k[layer], atol=2e-4, rtol=0)


def test_ratio_zero_equals_naive_concatenation(fp32, segments) -> None:
    prefix, chunks, suffix = segments
    cache, rest, cached, kvs = _assemble(fp32, segments)
    got, n = blend_prefill(fp32, cache, rest, len(prefix), cached, BlendConfig(ratio=0.0))
    assert n == 0
    naive_cache, _, _, _ = _assemble(fp32, segments, kvs)
    start = len(prefix) + sum(map(len, chunks))
    naive = fp32(torch.tensor([suffix]), start, naive_cache)  # reused KV as is, only the suffix runs
    torch.testing.assert_close(got, naive, atol=2e-4, rtol=0)
    torch.testing.assert_close(cache.k[12], naive_cache.k[12], atol=2e-4, rtol=0)


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    return float(F.kl_div(q_logits.log_softmax(-1), p_logits.log_softmax(-1), log_target=True, reduction="sum"))


def test_partial_recompute_counts_and_moves_toward_full(fp32, segments) -> None:
    prefix, chunks, suffix = segments
    ids = prefix + [t for c in chunks for t in c] + suffix
    full = fp32(torch.tensor([ids]), 0, fp32.new_cache(len(ids)))
    kls = {}
    for ratio, measure, widen in ((0.0, "k", 2.0), (0.3, "k", 2.0), (0.3, "v", 2.0), (0.3, "kv", 2.0), (0.3, "k", 1.0)):
        cache, rest, cached, _ = _assemble(fp32, segments)
        got, n = blend_prefill(fp32, cache, rest, len(prefix), cached,
                               BlendConfig(ratio, measure=measure, widen=widen))
        assert n == round(ratio * int(cached.sum()))
        kls[ratio, measure, widen] = _kl(full[0, 0], got[0, 0])
    naive = kls[0.0, "k", 2.0]
    assert all(kl < naive for key, kl in kls.items() if key[0] == 0.3), kls


def test_gradual_filtering_narrows_the_check_layers_choice(fp32, segments) -> None:
    """widen 2, ratio 0.3: layers 1-2 rewrite 60% of the reused rows, layers from 3 on 30% of
    them, all among the 60%. (Layer 0 is left out: its K/V do not depend on context.)"""
    cache, rest, cached, _ = _assemble(fp32, segments)
    before = [k.clone() for k in cache.k]
    p, n_cached = len(segments[0]), int(cached.sum())
    blend_prefill(fp32, cache, rest, p, cached, BlendConfig(0.3, widen=2.0, check_layer=1, refine_layer=3))
    rows = torch.arange(p, p + len(cached))[cached]

    def rewritten(layer: int) -> torch.Tensor:
        return (cache.k[layer][0, :, rows] != before[layer][0, :, rows]).any(-1).any(0)  # [reused rows]

    early, late = rewritten(2), rewritten(3)
    assert int(early.sum()) == round(0.6 * n_cached) and torch.equal(rewritten(1), early)
    assert int(late.sum()) == round(0.3 * n_cached) and torch.equal(rewritten(29), late)
    assert not bool((late & ~early).any())


def test_stages_of_the_selection() -> None:
    assert _stages(BlendConfig(0.15), 30) == {1: pytest.approx(0.3), 5: 0.15}
    assert _stages(BlendConfig(0.15, widen=1.0), 30) == {1: 0.15}
    assert _stages(BlendConfig(0.6), 30) == {1: 1.0, 5: 0.6}  # widened past every token
    assert _stages(BlendConfig(0.15), 4) == {1: pytest.approx(0.3), 3: 0.15}  # refine clamped to the last layer
    assert _stages(BlendConfig(0.15, check_layer=5, refine_layer=3), 30) == {5: 0.15}
    assert _stages(BlendConfig(1.0), 30) == {}  # no selection: a full prefill


def test_int4_ratio_one_is_close_to_full_prefill(segments) -> None:
    model = smollm.model("int4")
    prefix, chunks, suffix = segments
    ids = prefix + [t for c in chunks for t in c] + suffix
    full = model(torch.tensor([ids]), 0, model.new_cache(len(ids)))[0, 0]
    cache, rest, cached, _ = _assemble(model, segments)
    got = blend_prefill(model, cache, rest, len(prefix), cached, BlendConfig(ratio=1.0))[0][0, 0]
    assert int(got.argmax()) == int(full.argmax())
    assert _kl(full, got) < 0.05


def test_config_errors() -> None:
    with pytest.raises(InvalidParams):
        BlendConfig(ratio=1.5)
    with pytest.raises(InvalidParams):
        BlendConfig(measure="q")
    with pytest.raises(InvalidParams):
        BlendConfig(check_layer=-1)
    with pytest.raises(InvalidParams, match="widen"):
        BlendConfig(widen=0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_offset_causal_attention_equals_the_masked_reference(dtype: torch.dtype) -> None:
    from inference.model import causal_mask, offset_causal_attention

    g = torch.Generator().manual_seed(0)
    start, t = 37, 50
    q = torch.randn(1, 6, t, 16, generator=g).to(dtype)
    k, v = (torch.randn(1, 2, start + t, 16, generator=g).to(dtype) for _ in range(2))
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=causal_mask(start, t),
                                          enable_gqa=True)
    got = offset_causal_attention(q, k, v, start)
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), want, atol=1e-5 if dtype == torch.float32 else 2e-2, rtol=0)


def test_partial_recompute_over_exact_kv_is_exact(fp32, segments) -> None:
    """When the "reused" KV is already what a full prefill wrote, recomputing any subset of the
    tokens (scattered rows, sparse causal mask) must give the full prefill's logits."""
    prefix, chunks, suffix = segments
    ids = prefix + [t for c in chunks for t in c] + suffix
    cache = fp32.new_cache(len(ids))
    full = fp32(torch.tensor([ids]), 0, cache)
    p = len(prefix)
    cached = torch.tensor([True] * (len(ids) - p - len(suffix)) + [False] * len(suffix))
    for ratio, widen in ((0.1, 2.0), (0.5, 2.0), (0.1, 1.0)):
        got, n = blend_prefill(fp32, cache, torch.tensor([ids[p:]]), p, cached, BlendConfig(ratio, widen=widen))
        assert 0 < n < int(cached.sum())
        torch.testing.assert_close(got, full, atol=2e-4, rtol=0)
