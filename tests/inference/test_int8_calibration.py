"""Calibrated int8 code files: written, read back, tied to their model, used by the model (also in
rotated bases, which the file carries)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.errors import InvalidParams, ModelLoadError
from inference.int8_calibration import FUSED_PARTS, Int8Codes, load_int8_codes, save_int8_codes
from inference.model import Transformer
from inference.quant import dequantize_gguf, quantize_int8
from inference.rotation import NORM_OF, Rotation, rotate_weight
from tests.inference import smollm


def _nearest_codes(gf, rotation: Rotation | None = None) -> Int8Codes:  # noqa: ANN001
    """Round-to-nearest codes in the file format (a stand-in for minutes of GPTQ), in ``rotation``'s bases."""
    codes = {}
    for i in range(gf.config.n_layers):
        for attr, parts in FUSED_PARTS.items():
            raws = [gf.tensor(f"blk.{i}.{p}.weight") for p in parts]
            w = torch.cat([dequantize_gguf(r.data, r.qtype, r.shape) for r in raws])
            if rotation is not None:
                g = gf.tensor(f"blk.{i}.{NORM_OF[attr]}.weight") if attr in NORM_OF else None
                gain = None if g is None else dequantize_gguf(g.data, g.qtype, (gf.config.dim,))
                w = rotate_weight(w, attr, gf.config, rotation, gain).float()
            codes[f"blk.{i}.{attr}"] = quantize_int8(w)
    return codes


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Int8Codes]:
    smollm.require_model()
    gf = smollm.gguf_file()
    codes = _nearest_codes(gf)
    path = tmp_path_factory.mktemp("codes") / "smollm.int8.pt"
    save_int8_codes(codes, gf, path, info={"method": "nearest (test)"})
    return path, codes


def test_codes_round_trip_and_give_the_nearest_rounding_model(saved: tuple[Path, Int8Codes]) -> None:
    path, codes = saved
    gf = smollm.gguf_file()
    loaded, rotation, info = load_int8_codes(path, gf)
    assert info == {"method": "nearest (test)"} and rotation is None
    assert set(loaded) == set(codes)
    assert all(torch.equal(loaded[k][0], codes[k][0]) and torch.equal(loaded[k][1], codes[k][1]) for k in codes)
    tokens = torch.tensor([[1, 504, 3458, 314, 260, 2634, 282]])
    a = Transformer.from_gguf(gf, "int8", loaded)
    b = smollm.model("int8")  # built with round-to-nearest from the GGUF
    torch.testing.assert_close(a(tokens, 0, a.new_cache(8), last_only=False),
                               b(tokens, 0, b.new_cache(8), last_only=False), rtol=0, atol=0)


def test_a_file_for_another_model_is_refused(saved: tuple[Path, Int8Codes], tmp_path: Path) -> None:
    payload = torch.load(saved[0], weights_only=True)
    payload["model"]["sha256_sample"] = "0" * 64
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    with pytest.raises(ModelLoadError, match="another model"):
        load_int8_codes(other, smollm.gguf_file())


def test_a_file_that_is_not_a_code_file_is_refused(tmp_path: Path) -> None:
    smollm.require_model()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ModelLoadError):
        load_int8_codes(junk, smollm.gguf_file())
    torch.save({"format": "something else"}, junk)
    with pytest.raises(ModelLoadError, match="not an int8 code file"):
        load_int8_codes(junk, smollm.gguf_file())


def test_codes_are_only_for_the_int8_mode(saved: tuple[Path, Int8Codes]) -> None:
    with pytest.raises(InvalidParams):
        Transformer.from_gguf(smollm.gguf_file(), "int4", saved[1])


def test_rotated_codes_carry_their_rotation_and_run_in_its_bases(tmp_path: Path) -> None:
    smollm.require_model()
    gf = smollm.gguf_file()
    rot = Rotation.random(gf.config, seed=5)
    path = tmp_path / "rotated.pt"
    save_int8_codes(_nearest_codes(gf, rot), gf, path, info={"method": "nearest, rotated (test)"}, rotation=rot)
    codes, loaded, _ = load_int8_codes(path, gf)
    assert loaded is not None and torch.equal(loaded.residual, rot.residual.float())
    assert torch.equal(loaded.ffn_signs, rot.ffn_signs.float()) and torch.equal(loaded.head, rot.head.float())
    # the file's codes and rotation make the model that rounds the rotated weights itself
    tokens = torch.tensor([[1, 504, 3458, 314, 260, 2634, 282]])
    a = Transformer.from_gguf(gf, "int8", codes, loaded)
    b = Transformer.from_gguf(gf, "int8", rotation=rot)
    torch.testing.assert_close(a(tokens, 0, a.new_cache(8), last_only=False),
                               b(tokens, 0, b.new_cache(8), last_only=False), rtol=0, atol=0)
    # and it is still SmolLM2: the same next tokens as the plain fp32 model on this prompt
    ref = smollm.model("fp32")
    want = ref(tokens, 0, ref.new_cache(8), last_only=False)
    assert (a(tokens, 0, a.new_cache(8), last_only=False).argmax(-1) == want.argmax(-1)).float().mean() >= 6 / 7


def test_version_1_files_load_as_unrotated_and_a_bad_rotation_is_refused(saved: tuple[Path, Int8Codes],
                                                                         tmp_path: Path) -> None:
    payload = torch.load(saved[0], weights_only=True)
    old = {k: v for k, v in payload.items() if k != "rotation"} | {"format": "engram-int8-gptq-v1"}
    torch.save(old, tmp_path / "v1.pt")
    codes, rotation, _ = load_int8_codes(tmp_path / "v1.pt", smollm.gguf_file())
    assert rotation is None and set(codes) == set(saved[1])
    cfg = smollm.gguf_file().config
    rot = Rotation.random(cfg)
    fields = {"residual": rot.residual.float(), "head": rot.head.float(), "ffn_signs": rot.ffn_signs.float(),
              "ffn_block": rot.ffn_block.float()}
    for bad, match in (({k: v for k, v in fields.items() if k != "head"}, "malformed"),
                       (fields | {"residual": torch.eye(cfg.dim) * 2}, "not orthogonal"),
                       (fields | {"ffn_block": torch.eye(5)}, "shapes")):
        torch.save(payload | {"rotation": bad}, tmp_path / "bad.pt")
        with pytest.raises(ModelLoadError, match=match):
            load_int8_codes(tmp_path / "bad.pt", smollm.gguf_file())
