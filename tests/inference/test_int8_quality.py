"""The int8 engine as bench/decode.py runs it: GPTQ codes in rotated bases, calibrated here the
way bench/int8_calibrate.py does (about a minute), against the issue's bar of top-1 agreement
>= 0.97 with fp32. Measured on 3,600 positions of HotpotQA paragraphs 260-599, which neither the
calibration (LongMemEval sessions, paragraphs 600-799) nor any other measurement reads: 600
positions move by a point between texts, 3,600 hold the figure to a few tenths."""
from __future__ import annotations

import math

import torch

from inference.model import Transformer
from inference.rotation import Rotation
from tests.inference import smollm

WINDOWS, WINDOW_LEN = 12, 300


def _windows() -> list[list[int]]:
    ids = smollm.tokenizer().encode("\n\n".join(smollm.hotpot_text(600)[260:600]))
    assert len(ids) >= WINDOWS * WINDOW_LEN
    return [ids[i * WINDOW_LEN : (i + 1) * WINDOW_LEN] for i in range(WINDOWS)]


def _run(model: Transformer, windows: list[list[int]]) -> tuple[torch.Tensor, float]:
    """Argmax at every position, and perplexity."""
    top, nll = [], 0.0
    for w in windows:
        logits = model(torch.tensor([w]), 0, model.new_cache(len(w)), last_only=False)[0]
        top.append(logits.argmax(-1))
        nll += float(torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(w[1:]), reduction="sum"))
    return torch.cat(top), math.exp(nll / sum(len(w) - 1 for w in windows))


def test_calibrated_rotated_int8_keeps_top1_agreement_with_fp32() -> None:
    from bench.int8_calibrate import DAMP, ROTATION_SEED, calibration_windows, encyclopedia_windows
    from inference.chat_template import ChatTemplate
    from inference.int8_calibration import calibrate_int8

    smollm.require_model()
    gf, tok = smollm.gguf_file(), smollm.tokenizer()
    rot = Rotation.random(gf.config, ROTATION_SEED)
    cal = calibration_windows(tok, ChatTemplate.from_gguf(gf.metadata)) + encyclopedia_windows(tok)
    model = Transformer.from_gguf(gf, "int8", calibrate_int8(gf, cal, damp=DAMP, rotation=rot), rot)
    windows = _windows()
    ref_top, ref_ppl = _run(smollm.model("fp32"), windows)
    top, ppl = _run(model, windows)
    agree = float((top == ref_top).float().mean())
    print(f"rotated GPTQ int8: top-1 agreement {agree:.4f} over {top.numel()}; perplexity {ppl:.3f} vs {ref_ppl:.3f}")
    assert top.numel() >= 3000
    assert agree >= 0.97, f"top-1 agreement {agree:.4f}"
    assert abs(ppl / ref_ppl - 1) < 0.03
