"""GGUF block decoding and int8/int4 re-quantization, checked against the block definitions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inference import quant
from tests.inference import smollm


def _f16(x: float) -> bytes:
    return np.float16(x).tobytes()


def _q4_bytes(codes: list[int]) -> bytes:
    """32 codes -> 16 bytes: code j in the low nibble and code j+16 in the high nibble of byte j."""
    return bytes(codes[j] | (codes[j + 16] << 4) for j in range(16))


CODES = [(7 * j + 3) % 16 for j in range(32)]
INT8S = [((13 * j) % 255) - 127 for j in range(32)]

# (qtype, one block's bytes, the 32 weights the GGUF definition gives for it)
BLOCK_TABLE = [
    ("Q8_0", _f16(0.5) + np.array(INT8S, np.int8).tobytes(), [0.5 * q for q in INT8S]),
    ("Q4_0", _f16(0.25) + _q4_bytes(CODES), [0.25 * (q - 8) for q in CODES]),
    ("Q4_1", _f16(0.125) + _f16(-1.5) + _q4_bytes(CODES), [0.125 * q - 1.5 for q in CODES]),
    ("Q4_1", _f16(2.0) + _f16(0.0) + _q4_bytes([15] * 32), [30.0] * 32),
    ("Q4_0", _f16(-1.0) + _q4_bytes([0] * 32), [8.0] * 32),
]


@pytest.mark.parametrize(("qtype", "block", "expected"), BLOCK_TABLE)
def test_block_decodes_per_gguf_definition(qtype: str, block: bytes, expected: list[float]) -> None:
    raw = np.frombuffer(block * 2, dtype=np.uint8).reshape(1, -1)  # one row of two equal blocks
    w = quant.dequantize_gguf(raw, qtype, (1, 64))
    assert w.tolist() == [expected * 2]


@pytest.mark.parametrize(("qtype", "block", "expected"), [b for b in BLOCK_TABLE if b[0] != "Q8_0"])
def test_gguf_to_int4_is_lossless(qtype: str, block: bytes, expected: list[float]) -> None:
    raw = np.frombuffer(block, dtype=np.uint8).reshape(1, -1)
    q, scales, zeros = quant.gguf_to_int4(raw, qtype, (1, 32))
    assert q.dtype == torch.uint8 and int(q.max()) <= 15
    assert quant.dequantize_int4(q, scales, zeros).tolist() == [expected]


def test_real_tensors_match_the_gguf_package_dequantizer() -> None:
    import gguf

    smollm.require_model()
    gf = smollm.gguf_file()
    for name in ("token_embd.weight", "blk.0.attn_q.weight", "blk.3.ffn_down.weight"):
        t = gf.tensor(name)
        ours = quant.dequantize_gguf(t.data, t.qtype, t.shape)
        ref = gguf.quants.dequantize(t.data, gguf.GGMLQuantizationType[t.qtype])
        assert ours.shape == t.shape
        torch.testing.assert_close(ours, torch.from_numpy(ref).float(), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(4, 32), (64, 96), (3, 576)])
def test_int8_round_trip_error_is_at_most_half_a_step(shape: tuple[int, int]) -> None:
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    q, scales = quant.quantize_int8(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127
    err = (quant.dequantize_int8(q, scales) - w).abs()
    assert bool((err <= scales[:, None] / 2 + 1e-6).all())


@pytest.mark.parametrize("group", [32, 64])
def test_int4_round_trip_error_is_at_most_half_a_step(group: int) -> None:
    w = torch.randn(8, 128, generator=torch.Generator().manual_seed(2))
    q, scales, zeros = quant.quantize_int4(w, group)
    assert scales.shape == (8, 128 // group) and int(q.max()) <= 15
    err = (quant.dequantize_int4(q, scales, zeros) - w).abs().reshape(8, -1, group)
    assert bool((err <= scales[..., None] / 2 + 1e-5).all())


def test_constant_rows_quantize_without_division_by_zero() -> None:
    w = torch.zeros(2, 32)
    assert quant.dequantize_int8(*quant.quantize_int8(w)).abs().max() == 0
    assert quant.dequantize_int4(*quant.quantize_int4(w)).abs().max() == 0
