"""Calibrated int8 codes for a GGUF model: computed once from text, cached in a file, loaded fast.

Usage::

    rot = Rotation.random(gf.config, seed=0)
    codes = calibrate_int8(gf, token_windows, rotation=rot)   # minutes: fp32 forward + GPTQ
    save_int8_codes(codes, gf, Path("smollm2.int8-gptq.pt"), info={"text": "LongMemEval sessions"}, rotation=rot)
    engine = LocalEngine(quant="int8", int8_codes=Path("smollm2.int8-gptq.pt"))  # reads ~100 MiB

The codes are the same format as round-to-nearest int8 (int8 [n, k] and one scale per output
channel), so the engine runs them through the same kernels; only the rounding of each weight is
chosen by :func:`inference.gptq.gptq_int8` against the inputs each layer sees on the calibration
text (fp32 model, the dequantized GGUF). With ``rotation``, each weight is first moved to the
rotated bases of ``inference.rotation`` (and its input statistics with it), and the file keeps
the rotation, which the model needs to run the codes. The calibration text must not be the text
quality is measured on. A cache file is tied to its model by the GGUF's size and a digest of some
tensors' bytes; loading it for another model raises ModelLoadError.
"""
from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from inference.errors import ModelLoadError
from inference.gguf_file import GGUFFile
from inference.gptq import gptq_int8
from inference.rotation import NORM_OF, Rotation, rotate_hessian, rotate_weight

FORMAT = "engram-int8-gptq-v2"  # v2 added the optional rotation
READABLE = (FORMAT, "engram-int8-gptq-v1")  # v1 files hold unrotated codes
ROTATION_FIELDS = ("residual", "head", "ffn_signs", "ffn_block")
# the fused Linear of each block (inference.model._block) and the GGUF tensors it concatenates
FUSED_PARTS = {"wqkv": ("attn_q", "attn_k", "attn_v"), "wo": ("attn_output",), "w13": ("ffn_gate", "ffn_up"),
               "w2": ("ffn_down",)}

Int8Codes = dict[str, tuple[torch.Tensor, torch.Tensor]]  # "blk.{i}.{wqkv|wo|w13|w2}" -> (q, scales)


def calibrate_int8(gf: GGUFFile, windows: Sequence[Sequence[int]], damp: float = 0.01,
                   rotation: Rotation | None = None) -> Int8Codes:
    """GPTQ int8 codes for every block Linear of ``gf``, from fp32 activations on ``windows`` (token
    ids); with ``rotation``, codes of the weights in those bases (load them with the same rotation)."""
    from inference.model import Transformer

    model = Transformer.from_gguf(gf, "fp32")
    hessians = _input_hessians(model, windows)
    codes: Int8Codes = {}
    for i, block in enumerate(model.blocks):
        for attr in FUSED_PARTS:
            key = f"blk.{i}.{attr}"
            w, h = getattr(block, attr).weight, hessians[key]
            if rotation is not None:
                gain = getattr(block, NORM_OF[attr]) if attr in NORM_OF else None
                w = rotate_weight(w, attr, gf.config, rotation, gain).float()
                h = rotate_hessian(h, attr, gf.config, rotation, gain)
            codes[key] = gptq_int8(w, h, damp=damp)
    return codes


def _input_hessians(model: Any, windows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """Sum of x^T x over every input row of every block Linear, divided by the row count."""
    sums: dict[str, torch.Tensor] = {}
    rows = 0

    def hook(key: str):  # noqa: ANN202
        def pre(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].reshape(-1, args[0].shape[-1]).double()
            sums[key] = sums.get(key, 0) + x.t() @ x
        return pre

    handles = [getattr(b, attr).register_forward_pre_hook(hook(f"blk.{i}.{attr}"))
               for i, b in enumerate(model.blocks) for attr in FUSED_PARTS]
    try:
        for w in windows:
            model(torch.tensor([list(w)]), 0, model.new_cache(len(w)))
            rows += len(w)
    finally:
        for h in handles:
            h.remove()
    return {k: v / rows for k, v in sums.items()}


def model_identity(gf: GGUFFile) -> dict[str, Any]:
    """What ties a cache file to its model: file size and a digest of the first and last block tensors."""
    n = gf.config.n_layers
    digest = hashlib.sha256()
    for name in (f"blk.0.{p}.weight" for p in ("attn_q", "ffn_down")):
        digest.update(gf.tensor(name).data.tobytes())
    for name in (f"blk.{n - 1}.{p}.weight" for p in ("attn_q", "ffn_down")):
        digest.update(gf.tensor(name).data.tobytes())
    return {"size": gf.path.stat().st_size, "sha256_sample": digest.hexdigest()}


def save_int8_codes(codes: Int8Codes, gf: GGUFFile, path: Path, info: Mapping[str, Any] | None = None,
                    rotation: Rotation | None = None) -> None:
    """Write ``codes`` for the model in ``gf`` (computed in ``rotation``'s bases, if given) to
    ``path`` (written to a temporary name, then renamed)."""
    rot = None if rotation is None else {f: getattr(rotation, f).float().contiguous() for f in ROTATION_FIELDS}
    payload = {"format": FORMAT, "model": model_identity(gf), "info": dict(info or {}), "rotation": rot,
               "codes": {k: (q.contiguous(), s.float().contiguous()) for k, (q, s) in codes.items()}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_int8_codes(path: Path, gf: GGUFFile) -> tuple[Int8Codes, Rotation | None, dict[str, Any]]:
    """Codes, the rotation they were computed in (None: none) and their ``info`` from a file
    written by :func:`save_int8_codes` for this model.

    Read into private memory, not memory-mapped: a mapping would page the codes in at their first
    use, so load time and resident memory measured at load would leave most of them out.
    """
    try:
        payload = torch.load(path, weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise ModelLoadError(f"cannot read int8 codes {path}: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") not in READABLE:
        raise ModelLoadError(f"{path} is not an int8 code file ({FORMAT})")
    if payload["model"] != model_identity(gf):
        raise ModelLoadError(f"{path} was calibrated for another model than {gf.path.name}")
    codes = payload["codes"]
    want = {f"blk.{i}.{attr}" for i in range(gf.config.n_layers) for attr in FUSED_PARTS}
    if set(codes) != want:
        raise ModelLoadError(f"{path} lacks codes for {sorted(want - set(codes))[:3]}...")
    return {k: (q, s) for k, (q, s) in codes.items()}, _rotation(payload.get("rotation"), gf, path), payload["info"]


def _rotation(fields: Mapping[str, torch.Tensor] | None, gf: GGUFFile, path: Path) -> Rotation | None:
    if fields is None:
        return None
    if not isinstance(fields, Mapping) or set(fields) != set(ROTATION_FIELDS):
        raise ModelLoadError(f"{path} has a malformed rotation")
    rot = Rotation(**{f: fields[f] for f in ROTATION_FIELDS})
    rot.check(gf.config)
    return rot
