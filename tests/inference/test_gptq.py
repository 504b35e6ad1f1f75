"""GPTQ int8 rounding: same format as round-to-nearest, never a larger output error on its inputs."""
from __future__ import annotations

import pytest
import torch

from inference import quant
from inference.gptq import absmax_scales, gptq_int8, input_hessian


def _inputs(tokens: int, k: int, seed: int, correlated: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, k, generator=g)
    if correlated:  # a few shared directions and uneven channel scales, as in a model's activations
        x = x @ torch.randn(k, k, generator=g) * 0.3 + torch.randn(tokens, 4, generator=g) @ torch.randn(4, k, generator=g)
        x = x * torch.rand(k, generator=g).pow(3).mul(4).add(0.1)
    return x


def _output_error(w: torch.Tensor, q: torch.Tensor, s: torch.Tensor, x: torch.Tensor) -> float:
    return float(((quant.dequantize_int8(q, s) - w) @ x.t()).norm() / (w @ x.t()).norm())


def test_input_hessian_is_the_mean_outer_product() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    assert input_hessian(x).tolist() == [[5.0, -0.5], [-0.5, 2.5]]


@pytest.mark.parametrize(("n", "k"), [(8, 32), (64, 96), (5, 130)])
def test_uncorrelated_inputs_give_round_to_nearest(n: int, k: int) -> None:
    """With H diagonal, no error can be moved onto other columns: the codes are plain rounding."""
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(n))
    h = torch.diag(torch.rand(k, generator=torch.Generator().manual_seed(k)).add(0.5)).double()
    q, s = gptq_int8(w, h, block=32)
    q0, s0 = quant.quantize_int8(w)
    assert torch.equal(q, q0) and torch.allclose(s, s0)


# (rows, input columns, block, seed)
CASES = [(16, 64, 128, 0), (48, 96, 32, 1), (32, 200, 64, 2), (7, 33, 8, 3)]


@pytest.mark.parametrize(("n", "k", "block", "seed"), CASES)
def test_codes_keep_the_int8_format_and_lower_the_output_error(n: int, k: int, block: int, seed: int) -> None:
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(100 + seed)) / k**0.5
    x = _inputs(4 * k, k, seed, correlated=True)
    q, s = gptq_int8(w, input_hessian(x), block=block)
    assert q.dtype == torch.int8 and q.shape == (n, k) and int(q.abs().max()) <= 127
    torch.testing.assert_close(s, absmax_scales(w))  # scales are round-to-nearest's
    q0, s0 = quant.quantize_int8(w)
    assert _output_error(w, q, s, x) < 0.9 * _output_error(w, q0, s0, x)


def test_block_size_does_not_change_the_result() -> None:
    w = torch.randn(12, 80, generator=torch.Generator().manual_seed(5))
    h = input_hessian(_inputs(300, 80, 5, correlated=True))
    a, _ = gptq_int8(w, h, block=16)
    b, _ = gptq_int8(w, h, block=80)
    assert (a.int() - b.int()).abs().max() <= 1 and (a != b).float().mean() < 0.01  # float64 summation order


def test_inputs_that_are_always_zero_are_allowed() -> None:
    w = torch.randn(4, 32, generator=torch.Generator().manual_seed(6))
    x = _inputs(64, 32, 6, correlated=False)
    x[:, 5] = 0
    q, s = gptq_int8(w, input_hessian(x))
    assert bool((q.float() * s[:, None] - w).abs().max() < 2 * s.max())  # no NaN, no runaway column
