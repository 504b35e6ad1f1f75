"""Quantized Linear modules: kernel layout, and both execution paths against the float reference."""
from __future__ import annotations

import pytest
import torch

from inference import linear, quant
from inference.errors import InvalidParams


def _weight(n: int, k: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) / k**0.5


@pytest.mark.parametrize(("n", "k"), [(64, 32), (192, 576), (128, 1536)])
def test_unpack_inverts_torch_int4_packing(n: int, k: int) -> None:
    q = torch.randint(0, 16, (n, k), dtype=torch.uint8, generator=torch.Generator().manual_seed(n))
    assert torch.equal(linear.unpack_int4(linear.pack_int4(q), n, k), q)


@pytest.mark.parametrize("quant_mode", ["int8", "int4"])
@pytest.mark.parametrize("rows", [1, 3, 31, 32, 127, 128, 200])
def test_quantized_linear_matches_its_dequantized_weight(quant_mode: str, rows: int) -> None:
    w = _weight(192, 576)
    lin = linear.linear_from_float(w, quant_mode)
    x = torch.randn(rows, 576, generator=torch.Generator().manual_seed(3))
    ref = x @ lin.dequantize().float().t()  # exact math on the stored weight
    y = lin(x)
    assert y.shape == (rows, 192) and y.dtype == torch.bfloat16
    rel = (y.float() - ref).norm() / ref.norm()
    assert rel < 0.01  # bf16 activations


@pytest.mark.parametrize(("quant_mode", "max_rel"), [("fp32", 1e-6), ("int8", 0.02), ("int4", 0.12)])
def test_quantized_linear_approximates_the_float_weight(quant_mode: str, max_rel: float) -> None:
    w = _weight(256, 512, seed=5)
    x = torch.randn(4, 512, generator=torch.Generator().manual_seed(6))
    ref = x @ w.t()
    y = linear.linear_from_float(w, quant_mode)(x).float()
    assert (y - ref).norm() / ref.norm() < max_rel


def test_int4_kernel_uses_the_gguf_affine_form() -> None:
    """A Q4_1 weight goes to the int4 kernel without re-quantization: w = d*q + m exactly."""
    q = torch.randint(0, 16, (64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    d = torch.full((64, 2), 0.25)
    m = torch.full((64, 2), -1.0)
    lin = linear.Int4Linear(q, d, m + 8 * d)
    expected = d.repeat_interleave(32, 1) * q.float() + m.repeat_interleave(32, 1)
    assert torch.equal(lin.dequantize().float(), expected)
    x = torch.eye(64)[:2]  # two rows: the decode kernel path
    assert torch.equal(lin(x).float(), expected[:, :2].t())


def test_fused_rows_concatenate_along_output() -> None:
    a, b = _weight(64, 64, 1), _weight(128, 64, 2)
    w = torch.cat([a, b])
    lin = linear.linear_from_float(w, "int8")
    x = torch.randn(1, 64, generator=torch.Generator().manual_seed(8))
    y = lin(x).float()
    torch.testing.assert_close(y[:, :64], (x @ a.t()), atol=0.05, rtol=0.05)


def test_unknown_mode_is_a_caller_error() -> None:
    with pytest.raises(InvalidParams):
        linear.linear_from_float(torch.zeros(64, 64), "int3")


def test_int8_from_gguf_q8_rows_keeps_error_small() -> None:
    w = _weight(64, 128, seed=9)
    q, s = quant.quantize_int8(w)
    torch.testing.assert_close(quant.dequantize_int8(q, s), w, atol=float(s.max()) / 2 + 1e-6, rtol=0)


def test_unpack_follows_this_cpus_row_block() -> None:
    """The packing block is probed (64 rows on AVX512, 32 on AVX2), so 3 blocks of any size unpack."""
    n = 3 * linear.int4_block_rows()
    q = torch.randint(0, 16, (n, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(11))
    assert torch.equal(linear.unpack_int4(linear.pack_int4(q), n, 96), q)
