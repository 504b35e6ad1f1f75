"""Which dtype the quantized modes compute in (inference.compute_dtype), and that the choice holds."""
from __future__ import annotations

import pytest
import torch

from inference.compute_dtype import compute_dtype, native_bf16
from inference.errors import InvalidParams
from inference.linear import Int4Linear, Int8Linear
from tests.inference import smollm

AVX2 = "flags\t\t: fpu vme de pse tsc msr fma avx f16c avx2 sha_ni"
SAPPHIRE = "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"
ZEN4 = "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16"


@pytest.mark.parametrize(("flags", "want"), [(AVX2, torch.float32), (SAPPHIRE, torch.bfloat16),
                                              (ZEN4, torch.bfloat16), ("Features\t: fp asimd", torch.float32),
                                              ("flags : avx512_bf16x", torch.float32)])
def test_bf16_only_with_a_bf16_instruction_set(flags: str, want: torch.dtype) -> None:
    assert compute_dtype(flags) == want
    assert native_bf16(flags) == (want == torch.bfloat16)


def test_the_model_computes_in_this_cpus_dtype_and_can_be_told_otherwise() -> None:
    smollm.require_model()
    model = smollm.model("int4")
    linears = [m for m in model.modules() if isinstance(m, (Int4Linear, Int8Linear))]
    assert model.act_dtype == compute_dtype() and {m.compute for m in linears} == {compute_dtype()}
    ids = torch.tensor([smollm.tokenizer().encode(" ".join(smollm.hotpot_text(2)))[:200]])
    other = torch.float32 if compute_dtype() == torch.bfloat16 else torch.bfloat16
    try:
        mine = model(ids, 0, model.new_cache(200), last_only=False)
        model.use_compute(other)
        assert model.act_dtype == other and {m.compute for m in linears} == {other}
        theirs = model(ids, 0, model.new_cache(200), last_only=False)
    finally:
        model.use_compute(compute_dtype())
    # the same model either way: the greedy choice agrees almost everywhere, the numbers do not match
    agree = (mine.argmax(-1) == theirs.argmax(-1)).float().mean().item()
    assert agree >= 0.95 and not torch.equal(mine, theirs)
    with pytest.raises(InvalidParams, match="bfloat16 or float32"):
        model.use_compute(torch.float16)
