"""GGUF reading: the model config from metadata, and typed errors for bad files."""
from __future__ import annotations

from pathlib import Path

import pytest

from inference.errors import ModelLoadError
from inference.gguf_file import GGUFFile, ModelConfig
from tests.inference import smollm


def test_smollm_config_from_metadata() -> None:
    smollm.require_model()
    cfg = smollm.gguf_file().config
    assert cfg == ModelConfig(vocab_size=49152, dim=576, n_layers=30, n_heads=9, n_kv_heads=3, ffn_dim=1536,
                              rope_base=100000.0, norm_eps=cfg.norm_eps, context_length=8192, tied_embeddings=True)
    assert cfg.head_dim == 64 and abs(cfg.norm_eps - 1e-5) < 1e-9


def test_tensors_in_torch_order() -> None:
    smollm.require_model()
    gf = smollm.gguf_file()
    assert gf.tensor("token_embd.weight").shape == (49152, 576)
    assert gf.tensor("blk.0.ffn_down.weight").shape == (576, 1536)
    assert gf.tensor("blk.0.attn_k.weight").qtype == "Q4_1"
    with pytest.raises(ModelLoadError):
        gf.tensor("no.such.tensor")


def test_missing_and_garbage_files_raise_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        GGUFFile.open(tmp_path / "absent.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ModelLoadError):
        GGUFFile.open(junk)


def test_unsupported_architecture_is_rejected() -> None:
    with pytest.raises(ModelLoadError, match="architecture"):
        ModelConfig.from_metadata({"general.architecture": "mamba"})
    with pytest.raises(ModelLoadError, match="lacks"):
        ModelConfig.from_metadata({"general.architecture": "llama", "llama.attention.head_count": 4})


def test_reader_agrees_with_the_gguf_package() -> None:
    """Our header parser against gguf.GGUFReader: every metadata value and tensor byte."""
    import gguf
    import numpy as np

    smollm.require_model()
    ours = smollm.gguf_file()
    ref = gguf.GGUFReader(ours.path)
    for key, field in ref.fields.items():
        if not key.startswith("GGUF."):  # the reader's own pseudo-fields (version, counts)
            assert ours.metadata[key] == field.contents(), key
    assert len(ref.tensors) == len(ours.tensors)
    for t in ref.tensors:
        mine = ours.tensor(t.name)
        assert mine.qtype == t.tensor_type.name
        assert np.array_equal(np.asarray(mine.data), np.asarray(t.data)), t.name


def test_truncated_file_is_a_load_error(tmp_path: Path) -> None:
    smollm.require_model()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm.gguf_file().path.read_bytes()[:5000])
    with pytest.raises(ModelLoadError):
        GGUFFile.open(cut)
