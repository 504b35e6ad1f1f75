"""The C int4 dequantizer (inference.native): built with this machine's compiler, same bits as PyTorch."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from inference import linear
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
def test_same_bits_as_pytorch(kernels, blocks: int, k: int, threads: int) -> None:  # noqa: ANN001
    if kernels is None:
        pytest.skip("no C compiler on this machine: the engine uses the PyTorch path")
    n = blocks * linear.int4_block_rows()
    lin = _lin(n, k, seed=blocks * k)
    w = kernels.int4_dequant(lin.packed, lin.scales_and_zeros, n, k, linear.int4_block_rows(), lin.group, threads)
    assert w.shape == (n, k) and w.dtype == torch.bfloat16
    assert torch.equal(w.view(torch.int16), lin.dequantize_torch().view(torch.int16))


def test_threads_split_a_large_weight_identically(kernels) -> None:  # noqa: ANN001
    if kernels is None:
        pytest.skip("no C compiler on this machine: the engine uses the PyTorch path")
    block, k = linear.int4_block_rows(), 576
    n = (2 * SPLIT_MIN_BYTES // (2 * k) // block + 1) * block  # well above the size that is split
    lin = _lin(n, k, seed=1)
    one = kernels.int4_dequant(lin.packed, lin.scales_and_zeros, n, k, block, lin.group, 1)
    two = kernels.int4_dequant(lin.packed, lin.scales_and_zeros, n, k, block, lin.group, 2)
    assert torch.equal(one.view(torch.int16), two.view(torch.int16))


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


def test_real_model_prefill_is_unchanged_by_the_kernel(kernels) -> None:  # noqa: ANN001
    """SmolLM2's Q4_1 layers through a 300-token prefill (the dequantize path): same logits."""
    if kernels is None:
        pytest.skip("no C compiler on this machine: the engine uses the PyTorch path")
    smollm.require_model()
    model = smollm.model("int4")
    ids = torch.tensor([smollm.tokenizer().encode(" ".join(smollm.hotpot_text(4)))[:300]])
    model.use_prefill_rows(16)
    try:
        model.use_native(None)
        eager = model(ids, 0, model.new_cache(300), last_only=False)
        model.use_native(kernels)
        native = model(ids, 0, model.new_cache(300), last_only=False)
    finally:
        model.use_native(None)
        model.use_prefill_rows(linear.Int4Linear.prefill_min_rows)
    assert torch.equal(eager, native)


def test_without_a_home_the_machine_cache_is_under_the_temporary_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from inference import native

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(native.Path, "home", staticmethod(no_home))
    assert native.default_machine_cache().parent == Path(tempfile.gettempdir())
