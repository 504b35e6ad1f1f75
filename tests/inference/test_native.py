"""The C int4 dequantizer (inference.native): built with this machine's compiler, same bits as PyTorch."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from inference import linear
from inference.compute_dtype import compute_dtype
from inference.errors import InvalidParams
from inference.native import SPLIT_MIN_BYTES, load_kernels
from inference.quant import quantize_int4
from tests.inference import smollm

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return load_kernels(tmp_path_factory.mktemp("kernels"))


def _lin(n: int, k: int, seed: int) -> linear.Int4Linear:
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) / k**0.5
    return linear.Int4Linear(*quantize_int4(w, linear.INT4_GROUP))


def test_kernel_builds_where_a_compiler_exists(kernels, tmp_path: Path) -> None:  # noqa: ANN001
    assert (kernels is not None) == HAVE_CC
    if kernels is not None:
        assert kernels.path.parent.exists() and kernels.path.suffix == ".so"
        # a second load of the same source on the same machine finds the built library
        assert load_kernels(kernels.path.parent).path == kernels.path


@pytest.mark.parametrize(("blocks", "k"), [(1, 32), (3, 96), (15, 576), (9, 1536)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_same_bits_as_pytorch(kernels, blocks: int, k: int, threads: int, dtype: torch.dtype) -> None:  # noqa: ANN001
    if kernels is None:
        pytest.skip("no C compiler on this machine: the engine uses the PyTorch path")
    n = blocks * linear.int4_block_rows()
    lin = _lin(n, k, seed=blocks * k)
    w = kernels.int4_dequant(lin.packed, lin.scales_and_zeros, n, k, linear.int4_block_rows(), lin.group, threads,
                             dtype)
    assert w.shape == (n, k) and w.dtype == dtype
    bits = torch.int16 if dtype == torch.bfloat16 else torch.int32
    assert torch.equal(w.view(bits), lin.dequantize_torch(dtype).view(bits))


def test_fp32_weight_is_the_unrounded_bf16_one(kernels) -> None:  # noqa: ANN001
    """fp32 output holds (q - 8) * scale + zero exactly; rounding it gives the bf16 output."""
    if kernels is None:
        pytest.skip("no C compiler on this machine: the engine uses the PyTorch path")
    lin = _lin(3 * linear.int4_block_rows(), 96, seed=5)
    args = (lin.packed, lin.scales_and_zeros, lin.n, lin.k, linear.int4_block_rows(), lin.group, 1)
    w32, w16 = kernels.int4_dequant(*args, torch.float32), kernels.int4_dequant(*args, torch.bfloat16)
    assert torch.equal(w32.to(torch.bfloat16).view(torch.int16), w16.view(torch.int16))
    assert not torch.equal(w32, w16.float())  # some weights need more than bf16's 8 bits


def test_threads_split_a_large_weight_identically(kernels) -> None:  # noqa: ANN001
    if kernels is None:
        pytest.skip("no C compiler on this machine: the engine uses the PyTorch path")
    block, k = linear.int4_block_rows(), 576
    n = (2 * SPLIT_MIN_BYTES // (2 * k) // block + 1) * block  # well above the size that is split
    lin = _lin(n, k, seed=1)
    one = kernels.int4_dequant(lin.packed, lin.scales_and_zeros, n, k, block, lin.group, 1)
    two = kernels.int4_dequant(lin.packed, lin.scales_and_zeros, n, k, block, lin.group, 2)
    assert torch.equal(one.view(torch.int16), two.view(torch.int16))


def _needs_gemv(kernels) -> None:  # noqa: ANN001
    if kernels is None or not kernels.has_gemv or linear.int4_block_rows() != 32:
        pytest.skip("the fp32 gemv kernel is built for AVX2 + FMA CPUs with torch's 32-row int4 blocks")


@pytest.mark.parametrize(("blocks", "k", "m"), [(1, 32, 1), (3, 96, 2), (48, 576, 1), (18, 1536, 5)])
def test_gemv_equals_a_matmul_with_the_fp32_weight(kernels, blocks: int, k: int, m: int) -> None:  # noqa: ANN001
    _needs_gemv(kernels)
    n = blocks * 32
    lin = _lin(n, k, seed=blocks + k)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(m))
    y = kernels.int4_gemv(x, lin.packed, lin.scales_and_zeros, n, k, 32, lin.group)
    want = x.double() @ lin.dequantize_torch(torch.float32).double().t()
    assert y.shape == (m, n) and y.dtype == torch.float32
    # fp32 sums in another order: agreement to rounding, far tighter than bf16's 3 digits
    assert torch.allclose(y.double(), want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_gemv_refuses_other_blocks(kernels) -> None:  # noqa: ANN001
    _needs_gemv(kernels)
    lin = _lin(64, 64, seed=4)
    with pytest.raises(InvalidParams, match="refused"):
        kernels.int4_gemv(torch.randn(1, 64), lin.packed, lin.scales_and_zeros, 64, 64, 64, lin.group)


def _decode_logits(model, ids: list[int], prompt: int) -> torch.Tensor:  # noqa: ANN001
    cache = model.new_cache(len(ids))
    model(torch.tensor([ids[:prompt]]), 0, cache)
    return torch.cat([model(torch.tensor([[t]]), prompt + i, cache)[0, -1:] for i, t in enumerate(ids[prompt:])])


def test_fp32_decode_takes_the_gemv_and_comes_closer_to_fp32(kernels) -> None:  # noqa: ANN001
    """SmolLM2 decoding with fp32 compute: the C gemv (where built) against torch's bf16 kernel,
    both measured against the fp32 engine on the same tokens."""
    _needs_gemv(kernels)
    smollm.require_model()
    model = smollm.model("int4")
    ids = smollm.tokenizer().encode(" ".join(smollm.hotpot_text(3)))[:120]
    reference = _decode_logits(smollm.model("fp32"), ids, 100)
    model.use_compute(torch.float32)
    try:
        runs = []
        for native in (None, kernels):
            model.use_native(native)
            assert all(m.gemv_ready() == (native is not None) for m in model.modules()
                       if isinstance(m, linear.Int4Linear) and m.n % 32 == 0)
            runs.append(_decode_logits(model, ids, 100))
    finally:
        model.use_native(None)
        model.use_compute(compute_dtype())
    aten, gemv = runs
    assert torch.equal(aten.argmax(-1), gemv.argmax(-1))
    # fp32 activations instead of bf16 ones: nearer the fp32 model (the int4 weights are the same)
    assert (gemv - reference).abs().mean() < (aten - reference).abs().mean()


def test_kernel_refuses_a_shape_it_cannot_walk(kernels) -> None:  # noqa: ANN001
    if kernels is None:
        pytest.skip("no C compiler on this machine: the engine uses the PyTorch path")
    lin = _lin(linear.int4_block_rows(), 64, seed=2)
    with pytest.raises(InvalidParams, match="refused"):
        kernels.int4_dequant(lin.packed, lin.scales_and_zeros, lin.n, lin.k, linear.int4_block_rows(), 48)


def test_an_unusable_cache_dir_falls_back_to_pytorch(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    assert load_kernels(blocker) is None
    lin = _lin(linear.int4_block_rows(), 64, seed=3)
    lin.native = None
    assert torch.equal(lin.dequantize(), lin.dequantize_torch())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_real_model_prefill_is_unchanged_by_the_kernel(kernels, dtype: torch.dtype) -> None:  # noqa: ANN001
    """SmolLM2's Q4_1 layers through a 300-token prefill (the dequantize path), computing in bf16
    and in fp32 (CPUs without native bf16): same logits."""
    if kernels is None:
        pytest.skip("no C compiler on this machine: the engine uses the PyTorch path")
    smollm.require_model()
    model = smollm.model("int4")
    ids = torch.tensor([smollm.tokenizer().encode(" ".join(smollm.hotpot_text(4)))[:300]])
    model.use_prefill_rows(16)
    model.use_compute(dtype)
    try:
        model.use_native(None)
        eager = model(ids, 0, model.new_cache(300), last_only=False)
        model.use_native(kernels)
        native = model(ids, 0, model.new_cache(300), last_only=False)
    finally:
        model.use_native(None)
        model.use_prefill_rows(linear.Int4Linear.prefill_min_rows)
        model.use_compute(compute_dtype())
    assert torch.equal(eager, native)


def test_without_a_home_the_machine_cache_is_under_the_temporary_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from inference import native

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(native.Path, "home", staticmethod(no_home))
    assert native.default_machine_cache().parent == Path(tempfile.gettempdir())
