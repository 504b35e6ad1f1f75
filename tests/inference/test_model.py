"""The Llama decoder: math pieces, cache consistency, HF reference logits, quantized agreement."""
from __future__ import annotations

import math

import pytest
import torch

from inference.model import TINY_CONFIG, apply_rope, causal_mask, random_model, rms_norm, rope_tables
from tests.inference import smollm

QUANTS = ["fp32", "int8", "int4"]


def test_rms_norm_unit_rms() -> None:
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    y = rms_norm(x, torch.ones(64), 1e-6)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(3), rtol=1e-4, atol=1e-4)


def test_rope_preserves_norm_and_relative_position() -> None:
    rot = rope_tables(8, 32, 10000.0)
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)
    r = lambda x, p: apply_rope(x, rot[p : p + 1])  # noqa: E731
    torch.testing.assert_close(r(q, 5).norm(), q.norm())
    # the score depends only on the distance between positions
    a = (r(q, 7) * r(k, 3)).sum()
    b = (r(q, 20) * r(k, 16)).sum()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r(q, 0), q)
    # adjacent pairs rotate: position 1 turns (x0, x1) by theta_0 = 1 radian
    x = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]).view(1, 1, 1, 8)
    torch.testing.assert_close(r(x, 1)[0, 0, 0, :2], torch.tensor([math.cos(1.0), math.sin(1.0)]))


def test_causal_mask_with_offset() -> None:
    assert causal_mask(2, 2).tolist() == [[True, True, True, False], [True, True, True, True]]


@pytest.mark.parametrize("quant", QUANTS)
def test_incremental_decode_equals_full_forward(quant: str) -> None:
    model = random_model(TINY_CONFIG, quant)
    tokens = torch.randint(0, TINY_CONFIG.vocab_size, (1, 24), generator=torch.Generator().manual_seed(0))
    full = model(tokens, 0, model.new_cache(32), last_only=False)  # [1, 24, V]
    cache = model.new_cache(32)
    model(tokens[:, :10], 0, cache)
    mid = model(tokens[:, 10:20], 10, cache, last_only=False)  # a second prefill chunk after a prefix
    steps = [model(tokens[:, i : i + 1], i, cache)[0, 0] for i in range(20, 24)]
    got = torch.cat([mid[0], torch.stack(steps)])  # positions 10..23
    want = full[0, 10:24]
    if quant == "fp32":
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    else:
        # bf16: one-row kernels and many-row matmuls round differently; the head refines only its
        # shortlist exactly, so compare the leading candidates, which are exact in both
        assert torch.equal(got.argmax(-1), want.argmax(-1))
        top_got, top_want = got.topk(8, -1).values, want.topk(8, -1).values
        torch.testing.assert_close(top_got, top_want, atol=0.02 * float(want.abs().max()), rtol=0)
    assert cache.length == 24


# ---- the real model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_tokens() -> list[list[int]]:
    """Two windows of real text, >= 500 scored positions in total."""
    smollm.require_model()
    tok = smollm.tokenizer()
    ids = tok.encode("\n\n".join(smollm.hotpot_text(12)))
    assert len(ids) >= 600
    return [ids[:300], ids[300:600]]


def test_fp32_logits_match_hf_transformers(text_tokens: list[list[int]]) -> None:
    tokens = torch.tensor([text_tokens[0][:64]])
    ours = smollm.model("fp32")(tokens, 0, smollm.model("fp32").new_cache(64), last_only=False)
    with torch.no_grad():
        ref = smollm.hf_model()(tokens).logits
    assert (ours - ref).abs().max() < 2e-3  # logits span about +-40
    assert torch.equal(ours.argmax(-1), ref.argmax(-1))


def _logits(quant: str, windows: list[list[int]]) -> list[torch.Tensor]:
    m = smollm.model(quant)
    return [m(torch.tensor([w]), 0, m.new_cache(len(w)), last_only=False)[0] for w in windows]


def _perplexity(logits: list[torch.Tensor], windows: list[list[int]]) -> float:
    nll = [torch.nn.functional.cross_entropy(lg[:-1], torch.tensor(w[1:]), reduction="sum") for lg, w in zip(logits, windows)]
    return math.exp(float(sum(nll)) / sum(len(w) - 1 for w in windows))


# int4 keeps the file's Q4_1 codes exactly; int8 re-quantizes each 4-bit block-scaled row to one
# int8 scale per row (~0.9% weight error), which flips ~4% of top-1 choices of this 135M model.
# That is round-to-nearest; the calibrated codes the bench runs are held to 0.97 in test_int8_quality.
MIN_AGREEMENT = {"int4": 0.97, "int8": 0.95}


@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_quantized_top1_agreement_and_perplexity(quant: str, text_tokens: list[list[int]]) -> None:
    ref = _logits("fp32", text_tokens)
    got = _logits(quant, text_tokens)
    agree = torch.cat([(a.argmax(-1) == b.argmax(-1)) for a, b in zip(ref, got)]).float()
    assert agree.numel() >= 500
    ppl_ref, ppl = _perplexity(ref, text_tokens), _perplexity(got, text_tokens)
    print(f"{quant}: top-1 agreement {agree.mean():.4f} over {agree.numel()}; perplexity {ppl:.3f} vs {ppl_ref:.3f}")
    assert agree.mean() >= MIN_AGREEMENT[quant], f"top-1 agreement {agree.mean():.3f}"
    assert abs(ppl / ppl_ref - 1) < 0.03, f"perplexity {ppl:.3f} vs fp32 {ppl_ref:.3f}"


def test_rope_table_grows_on_demand_with_the_same_values() -> None:
    model = random_model(TINY_CONFIG, "fp32")
    small = model.rotations(8)[:8].clone()
    grown = model.rotations(TINY_CONFIG.context_length + 5)  # past the context: still computed
    assert grown.shape[0] >= TINY_CONFIG.context_length + 5
    torch.testing.assert_close(grown[:8], small)
    torch.testing.assert_close(grown, rope_tables(TINY_CONFIG.head_dim, grown.shape[0], TINY_CONFIG.rope_base))


def test_short_forwards_run_on_the_decode_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """One token and short prefills on the decode threads, long prefills on the prefill threads."""
    from inference import model as model_module

    monkeypatch.setattr(model_module, "WIDE_FROM_ROWS", 4)  # the tiny model's context is 256
    model, saved = random_model(TINY_CONFIG, "int4"), torch.get_num_threads()
    try:
        model.use_threads(2, 1)
        cache = model.new_cache(16)
        model(torch.tensor([[1, 2, 3, 4]]), 0, cache)
        assert torch.get_num_threads() == 2
        model(torch.tensor([[5]]), 4, cache)
        assert torch.get_num_threads() == 1
        model(torch.tensor([[1, 2, 3]]), 0, cache)
        assert torch.get_num_threads() == 1
        model(torch.tensor([[1, 2, 3, 4, 5]]), 0, cache)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)
