"""Any Llama GGUF, not just SmolLM2: a tiny random model written with gguf.GGUFWriter, using
other storage types (F16, F32, Q4_0, Q8_0 layers), an untied output head and no chat template."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.chat_template import CHATML
from inference.gguf_file import GGUFFile
from inference.local_engine import LocalEngine
from inference.model import Transformer
from inference.params import GenerationParams
from tests.inference import smollm

V, DIM, FFN, LAYERS, HEADS, KV_HEADS = 1024, 128, 256, 2, 4, 2
TYPES = {  # tensor -> storage type, chosen to cover every decoder path
    "attn_q": "Q4_0", "attn_k": "Q4_1", "attn_v": "Q8_0", "attn_output": "F16",
    "ffn_gate": "Q4_0", "ffn_up": "Q4_1", "ffn_down": "F32",
}


def _add(writer, name: str, w: np.ndarray, qtype: str) -> None:
    import gguf

    t = gguf.GGMLQuantizationType[qtype]
    if qtype == "F32":
        writer.add_tensor(name, w.astype(np.float32))
    elif qtype == "F16":
        writer.add_tensor(name, w.astype(np.float16))
    else:
        writer.add_tensor(name, gguf.quants.quantize(w.astype(np.float32), t), raw_dtype=t)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gguf

    smollm.require_model()
    meta = smollm.gguf_file().metadata
    tokens = meta["tokenizer.ggml.tokens"][:V]
    vocab = set(tokens)
    merges = [m for m in meta["tokenizer.ggml.merges"] if m.replace(" ", "") in vocab and all(p in vocab for p in m.split(" "))]
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(LAYERS)
    w.add_context_length(256)
    w.add_embedding_length(DIM)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(V)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(meta["tokenizer.ggml.token_type"][:V])
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    rng = np.random.default_rng(0)

    def rand(n: int, k: int) -> np.ndarray:
        return (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)

    _add(w, "token_embd.weight", rand(V, DIM) * 4, "F16")
    _add(w, "output.weight", rand(V, DIM) * 4, "Q8_0")
    _add(w, "output_norm.weight", 1 + 0.1 * rng.standard_normal(DIM), "F32")
    kv = KV_HEADS * DIM // HEADS
    shapes = {"attn_q": (DIM, DIM), "attn_k": (kv, DIM), "attn_v": (kv, DIM), "attn_output": (DIM, DIM),
              "ffn_gate": (FFN, DIM), "ffn_up": (FFN, DIM), "ffn_down": (DIM, FFN)}
    for i in range(LAYERS):
        for name, shape in shapes.items():
            _add(w, f"blk.{i}.{name}.weight", rand(*shape), TYPES[name])
        for norm in ("attn_norm", "ffn_norm"):
            _add(w, f"blk.{i}.{norm}.weight", 1 + 0.1 * rng.standard_normal(DIM), "F32")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_config_and_untied_head(tiny_gguf: Path) -> None:
    gf = GGUFFile.open(tiny_gguf)
    cfg = gf.config
    assert (cfg.n_layers, cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.vocab_size) == (LAYERS, DIM, HEADS, KV_HEADS, V)
    assert not cfg.tied_embeddings
    assert gf.tensor("blk.0.attn_output.weight").qtype == "F16"


def test_fp32_matches_hf_transformers(tiny_gguf: Path) -> None:
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32)
    tokens = torch.randint(3, V, (1, 40), generator=torch.Generator().manual_seed(0))
    ours = Transformer.from_gguf(GGUFFile.open(tiny_gguf), "fp32")
    got = ours(tokens, 0, ours.new_cache(40), last_only=False)
    with torch.no_grad():
        ref = hf(tokens).logits
    assert (got - ref).abs().max() < 1e-3 * ref.abs().max()


@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_quantized_modes_track_fp32(tiny_gguf: Path, quant: str) -> None:
    gf = GGUFFile.open(tiny_gguf)
    tokens = torch.randint(3, V, (1, 40), generator=torch.Generator().manual_seed(1))
    ref = Transformer.from_gguf(gf, "fp32")(tokens, 0, Transformer.from_gguf(gf, "fp32").new_cache(40), last_only=False)
    m = Transformer.from_gguf(gf, quant)
    got = m(tokens, 0, m.new_cache(40), last_only=False)
    assert (got - ref).norm() / ref.norm() < 0.05


def test_engine_generates_with_chatml_fallback(tiny_gguf: Path) -> None:
    engine = LocalEngine(model_path=tiny_gguf, quant="int4")
    assert engine.template.source == CHATML
    s = engine.stream_tokens([{"role": "user", "content": "hi"}], GenerationParams(max_tokens=6, temperature=0.8, seed=1))
    text = "".join(s)
    assert s.finish_reason in ("length", "stop") and text == engine.tokenizer.decode(s.token_ids)
    assert engine.tokenizer.decode(engine.tokenizer.encode("Hello, world! 123")) == "Hello, world! 123"


def test_rotated_gptq_codes_on_another_gguf(tiny_gguf: Path, tmp_path: Path) -> None:
    """Calibration in rotated bases on a model with an untied head, F16 embeddings and mixed storage
    types: the engine runs the file's codes and rotation and tracks fp32."""
    from inference.int8_calibration import calibrate_int8, save_int8_codes
    from inference.rotation import Rotation

    gf = GGUFFile.open(tiny_gguf)
    g = torch.Generator().manual_seed(2)
    windows = [torch.randint(3, V, (64,), generator=g).tolist() for _ in range(4)]
    rot = Rotation.random(gf.config, seed=0)
    codes = calibrate_int8(gf, windows, damp=0.1, rotation=rot)
    save_int8_codes(codes, gf, tmp_path / "codes.pt", info={"method": "GPTQ rotated (test)"}, rotation=rot)
    engine = LocalEngine(model_path=tiny_gguf, quant="int8", int8_codes=tmp_path / "codes.pt")
    assert "/int8-calibrated-rotated" in engine.model_id and engine.int8_rounding == "GPTQ rotated (test)"
    tokens = torch.randint(3, V, (1, 40), generator=torch.Generator().manual_seed(1))
    fp32 = Transformer.from_gguf(gf, "fp32")
    ref = fp32(tokens, 0, fp32.new_cache(40), last_only=False)
    got = engine.model(tokens, 0, engine.model.new_cache(40), last_only=False)
    assert (got - ref).norm() / ref.norm() < 0.05
