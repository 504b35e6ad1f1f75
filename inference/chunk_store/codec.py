"""Safe serialisation of a ChunkKV: a JSON header and raw tensor bytes, sealed by a sha256.

Layout (little-endian)::

    b"EKVC" | u8 version | u32 header length | header JSON | tensor bytes | sha256(all before)

The digest is checked before anything is parsed, so a torn or corrupted file or value is
detected (:class:`CorruptChunk`) and never loaded; nothing is ever unpickled. Codecs:

- ``"raw"``  the tensors' own dtype, lossless;
- ``"fp16"`` half precision;
- ``"int8"`` symmetric 8-bit: K with one scale per channel (layer, head, dim) over the chunk's
  tokens, V with one scale per token (layer, head, token) — K's outliers sit in fixed channels,
  V's error matters per token (the KIVI observation). Scales are fp32.

Usage: ``blob = encode(chunk, "int8")``; ``chunk = decode(blob, expected_key=chunk.key)``.
"""
from __future__ import annotations

import hashlib
import json
import struct

import torch

from inference.chunk_kv import ChunkKV
from inference.errors import InferenceError, InvalidParams

MAGIC, VERSION = b"EKVC", 1
CODECS = ("raw", "fp16", "int8")
_DIGEST = 32
_PREFIX = struct.Struct("<4sBI")
PREFIX_SIZE = _PREFIX.size  # magic, version, header length: enough to find the header
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "int8": torch.int8}


class CorruptChunk(InferenceError):
    """Stored chunk bytes failed their checksum or do not parse; the copy must be discarded."""


def quantize_int8(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one fp32 scale per slice reduced over ``dim``: x ≈ q * scale."""
    x = x.float()
    scale = x.abs().amax(dim=dim, keepdim=True).clamp_min(1e-12) / 127.0
    q = torch.round(x / scale).clamp_(-127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale


def _sections(chunk: ChunkKV, codec: str) -> dict[str, torch.Tensor]:
    """The named tensors that represent the chunk under ``codec``."""
    if codec == "raw":
        return {"k": chunk.k, "v": chunk.v}
    if codec == "fp16":
        return {"k": chunk.k.half(), "v": chunk.v.half()}
    kq, ks = quantize_int8(chunk.k, dim=2)  # k: [L, H, T, D] -> a scale per (L, H, D) channel
    vq, vs = quantize_int8(chunk.v, dim=3)  # v: a scale per (L, H, T) token
    return {"k": kq, "k_scale": ks, "v": vq, "v_scale": vs}


def encode(chunk: ChunkKV, codec: str = "raw") -> bytes:
    """Serialise ``chunk`` with ``codec``; the result is self-describing and checksummed."""
    if codec not in CODECS:
        raise InvalidParams(f"codec must be one of {CODECS}, got {codec!r}")
    if chunk.k.shape != chunk.v.shape or chunk.k.dim() != 4 or chunk.k.shape[2] != chunk.n_tokens:
        raise InvalidParams(f"chunk k/v must be [layers, kv_heads, {chunk.n_tokens}, head_dim], "
                            f"got {tuple(chunk.k.shape)} and {tuple(chunk.v.shape)}")
    parts, table, offset = [], [], 0
    for name, t in _sections(chunk, codec).items():
        raw = t.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes()
        table.append({"name": name, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                      "offset": offset, "nbytes": len(raw)})
        parts.append(raw)
        offset += len(raw)
    header = json.dumps({"key": chunk.key, "tokens": list(chunk.tokens), "meta": chunk.meta, "codec": codec,
                         "dtype": str(chunk.k.dtype).removeprefix("torch."), "tensors": table},
                        separators=(",", ":")).encode()
    body = _PREFIX.pack(MAGIC, VERSION, len(header)) + header + b"".join(parts)
    return body + hashlib.sha256(body).digest()


def read_header(blob: bytes) -> dict:
    """The header alone, without verifying the digest (for indexing files at start-up)."""
    if len(blob) < _PREFIX.size:
        raise CorruptChunk("shorter than the fixed prefix")
    magic, version, n = _PREFIX.unpack_from(blob)
    if magic != MAGIC or version != VERSION:
        raise CorruptChunk(f"not a chunk file (magic {magic!r}, version {version})")
    try:
        return json.loads(blob[_PREFIX.size : _PREFIX.size + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptChunk(f"header does not parse: {e}") from e


def decode(blob: bytes, expected_key: str | None = None) -> ChunkKV:
    """Verify and decode; raises CorruptChunk on any mismatch. Lossy codecs come back as fp32,
    with ``meta["kv_codec"]`` naming the codec so that a consumer can tell."""
    if len(blob) < _PREFIX.size + _DIGEST or hashlib.sha256(blob[:-_DIGEST]).digest() != blob[-_DIGEST:]:
        raise CorruptChunk("checksum mismatch (torn write or corruption)")
    header = read_header(blob)
    if expected_key is not None and header["key"] != expected_key:
        raise CorruptChunk(f"holds chunk {header['key'][:12]}, expected {expected_key[:12]}")
    base = _PREFIX.size + _PREFIX.unpack_from(blob)[2]
    data = memoryview(blob)[base : len(blob) - _DIGEST]
    t = {s["name"]: _tensor(data, s) for s in header["tensors"]}
    meta = dict(header["meta"])
    if header["codec"] == "raw":
        k, v = t["k"], t["v"]
    elif header["codec"] == "fp16":
        k, v = t["k"].float(), t["v"].float()
    else:
        k, v = dequantize_int8(t["k"], t["k_scale"]), dequantize_int8(t["v"], t["v_scale"])
    if header["codec"] != "raw":
        meta["kv_codec"] = header["codec"]
    return ChunkKV(key=header["key"], tokens=tuple(header["tokens"]), k=k, v=v, meta=meta)


def _tensor(data: memoryview, s: dict) -> torch.Tensor:
    dtype = _DTYPES[s["dtype"]]
    if s["nbytes"] == 0:  # frombuffer refuses an empty buffer
        return torch.zeros(s["shape"], dtype=dtype)
    raw = bytearray(data[s["offset"] : s["offset"] + s["nbytes"]])  # a copy: torch wants writable memory
    return torch.frombuffer(raw, dtype=dtype).reshape(s["shape"])


def relative_error(chunk: ChunkKV, codec: str) -> dict[str, float]:
    """‖x − decode(encode(x))‖ / ‖x‖ for K and V: the error a codec introduces."""
    back = decode(encode(chunk, codec))
    return {name: float((back_t - t.float()).norm() / t.float().norm().clamp_min(1e-12))
            for name, t, back_t in (("k", chunk.k, back.k), ("v", chunk.v, back.v))}
