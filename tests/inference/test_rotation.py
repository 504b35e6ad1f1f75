"""Rotated bases for the int8 codes: the same model in other coordinates, exact up to rounding."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from inference.errors import InvalidParams, ModelLoadError
from inference.gptq import input_hessian
from inference.model import TINY_CONFIG, Transformer
from inference.rotation import (
    FFN_BLOCK,
    FfnRotation,
    Rotation,
    hadamard,
    input_basis,
    power_of_two_block,
    rotate_hessian,
    rotate_weight,
    times_blocks,
)
from tests.inference import smollm


@pytest.mark.parametrize("n", [1, 2, 8, 64, 128])
def test_hadamard_is_orthonormal_with_equal_magnitudes(n: int) -> None:
    h = hadamard(n)
    torch.testing.assert_close(h @ h.t(), torch.eye(n, dtype=torch.float64))
    assert torch.allclose(h.abs(), torch.full((n, n), n**-0.5, dtype=torch.float64))


def test_hadamard_needs_a_power_of_two() -> None:
    with pytest.raises(InvalidParams, match="power of two"):
        hadamard(576)


def test_a_zero_norm_gain_cannot_be_rotated() -> None:
    rot, gain = Rotation.random(TINY_CONFIG), torch.ones(TINY_CONFIG.dim)
    gain[5] = 0
    with pytest.raises(ModelLoadError, match="gain has zeros"):
        rotate_hessian(torch.eye(TINY_CONFIG.dim), "wqkv", TINY_CONFIG, rot, gain)
    with pytest.raises(InvalidParams, match="unknown layer"):
        input_basis("wq", TINY_CONFIG, rot)


def test_power_of_two_block() -> None:
    assert [power_of_two_block(n, 64) for n in (1536, 576, 96, 7, 2048)] == [64, 64, 32, 1, 64]


def _explicit_basis(attr: str, rot: Rotation, gain: torch.Tensor | None) -> torch.Tensor:
    """A as a dense matrix, built the slow way, to check the blockwise helpers against."""
    d, block = input_basis(attr, TINY_CONFIG, rot, gain)
    k = {"wqkv": TINY_CONFIG.dim, "w13": TINY_CONFIG.dim, "wo": TINY_CONFIG.dim, "w2": TINY_CONFIG.ffn_dim}[attr]
    dense = torch.block_diag(*[block] * (k // block.shape[0]))
    return d[:, None] * dense  # d spans the input width


@pytest.mark.parametrize("attr", ["wqkv", "wo", "w13", "w2"])
def test_a_rotated_layer_maps_rotated_inputs_to_rotated_outputs(attr: str) -> None:
    cfg, g = TINY_CONFIG, torch.Generator().manual_seed(3)
    rot = Rotation.random(cfg, seed=1)
    kv = cfg.n_kv_heads * cfg.head_dim
    n, k = {"wqkv": (cfg.dim + 2 * kv, cfg.dim), "wo": (cfg.dim, cfg.dim), "w13": (2 * cfg.ffn_dim, cfg.dim),
            "w2": (cfg.dim, cfg.ffn_dim)}[attr]
    w, x = torch.randn(n, k, generator=g, dtype=torch.float64), torch.randn(9, k, generator=g, dtype=torch.float64)
    gain = 0.5 + torch.rand(k, generator=g, dtype=torch.float64) if attr in ("wqkv", "w13") else None
    a = _explicit_basis(attr, rot, gain)
    y, y_rot = x @ w.t(), (x @ a) @ rotate_weight(w, attr, cfg, rot, gain).t()
    if attr in ("wo", "w2"):  # writes the residual stream, which is kept rotated
        torch.testing.assert_close(y_rot, y @ rot.residual)
    elif attr == "wqkv":  # q and k as they were, each KV head's values rotated
        qk = cfg.head_dim * (cfg.n_heads + cfg.n_kv_heads)
        torch.testing.assert_close(y_rot[:, :qk], y[:, :qk])
        torch.testing.assert_close(y_rot[:, qk:].unflatten(-1, (-1, cfg.head_dim)),
                                   y[:, qk:].unflatten(-1, (-1, cfg.head_dim)) @ rot.head)
    else:  # w13: gate as it was, up carrying w2's input signs
        torch.testing.assert_close(y_rot[:, : cfg.ffn_dim], y[:, : cfg.ffn_dim])
        torch.testing.assert_close(y_rot[:, cfg.ffn_dim :], y[:, cfg.ffn_dim :] * rot.ffn_signs)
    # and the statistics GPTQ rounds against are those of the rotated inputs
    torch.testing.assert_close(rotate_hessian(input_hessian(x), attr, cfg, rot, gain), input_hessian(x @ a))


def test_ffn_rotation_is_the_hadamard_blocks_in_either_precision() -> None:
    rot = Rotation.random(TINY_CONFIG, seed=2)
    spin = FfnRotation(rot)
    x = torch.randn(1, 40, TINY_CONFIG.ffn_dim, generator=torch.Generator().manual_seed(4))
    want = times_blocks(x.double(), rot.ffn_block)
    torch.testing.assert_close(spin(x), want.float())
    # many bf16 rows: one bf16 matmul whose only rounding is the result's (the block is exact in bf16)
    got = spin(x.bfloat16())
    assert got.dtype == torch.bfloat16
    exact = times_blocks(x.bfloat16().double(), rot.ffn_block)
    assert ((got.double() - exact).abs() <= exact.abs() * 2**-8 + 1e-6).all()
    # a decode step's single row goes through fp32 and is handed on as fp32
    one = spin(x[:, :1].bfloat16())
    assert one.dtype == torch.float32
    torch.testing.assert_close(one, exact[:, :1].float())


def test_a_rotation_that_does_not_fit_is_refused() -> None:
    rot = Rotation.random(TINY_CONFIG)
    rot.check(TINY_CONFIG)
    with pytest.raises(ModelLoadError, match="shapes"):
        dataclasses.replace(rot, residual=torch.eye(TINY_CONFIG.dim + 1)).check(TINY_CONFIG)
    with pytest.raises(ModelLoadError, match="not orthogonal"):
        dataclasses.replace(rot, residual=rot.residual * 1.01).check(TINY_CONFIG)
    with pytest.raises(ModelLoadError, match="signs"):
        dataclasses.replace(rot, ffn_signs=rot.ffn_signs * 0.5).check(TINY_CONFIG)


def test_rotations_are_reproducible_from_their_seed() -> None:
    a, b, c = Rotation.random(TINY_CONFIG, 7), Rotation.random(TINY_CONFIG, 7), Rotation.random(TINY_CONFIG, 8)
    assert torch.equal(a.residual, b.residual) and torch.equal(a.ffn_signs, b.ffn_signs)
    assert not torch.equal(a.residual, c.residual)
    assert a.ffn_block.shape == (FFN_BLOCK, FFN_BLOCK)


def test_int4_has_no_rotated_form() -> None:
    smollm.require_model()
    with pytest.raises(InvalidParams, match="int4"):
        Transformer.from_gguf(smollm.gguf_file(), "int4", rotation=Rotation.random(smollm.gguf_file().config))


def test_the_real_model_in_rotated_bases_gives_the_same_logits() -> None:
    """SmolLM2 in fp32 with every block weight rotated, the norms' gains folded, w2's input rotated
    at run time and the residual stream rotated in and out: the logits of the plain model."""
    smollm.require_model()
    gf = smollm.gguf_file()
    plain, rotated = smollm.model("fp32"), Transformer.from_gguf(gf, "fp32", rotation=Rotation.random(gf.config, 0))
    assert all(bool((b.attn_norm == 1).all()) for b in rotated.blocks)  # the gains live in the weights
    tokens = torch.tensor([smollm.tokenizer().encode(" ".join(smollm.hotpot_text(2)))[:64]])
    want = plain(tokens, 0, plain.new_cache(64), last_only=False)
    got = rotated(tokens, 0, rotated.new_cache(64), last_only=False)
    assert (got - want).abs().max() < 1e-3 * want.abs().max()
    assert torch.equal(got.argmax(-1), want.argmax(-1))
