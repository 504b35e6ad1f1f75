"""KV-cache reuse end to end on the real SmolLM2: the prefix cache and segmented prompts with chunk reuse."""
from __future__ import annotations

import pytest
import torch

from inference.blend import BlendConfig
from inference.chunk_store_memory import MemoryChunkStore
from inference.errors import InvalidParams
from inference.generator import Generator
from inference.local_engine import LocalEngine
from inference.params import GenerationParams
from inference.prefill import PlainPrefill
from inference.prefix_cache import PrefixCache
from inference.segments import CacheStats, SegmentedPrompt
from tests.inference import smollm

SYSTEM = ("<|im_start|>system\nYou are a careful assistant. Answer in one short sentence, using only "
          "the documents given. If the documents do not say, answer that you do not know.<|im_end|>\n")
PARAMS = GenerationParams(max_tokens=6)


def _turn(question: str) -> str:
    return f"{SYSTEM}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def fp32():
    smollm.require_model()
    return smollm.model("fp32")


@pytest.fixture(scope="module")
def fp32_engine() -> LocalEngine:
    smollm.require_model()
    return LocalEngine(quant="fp32", chunk_store=MemoryChunkStore(), prefix_cache_blocks=16, block_size=16)


def _segments(paras: list[str], question: str) -> SegmentedPrompt:
    return SegmentedPrompt(prefix=SYSTEM + "<|im_start|>user\nDocuments:\n", chunks=[p + "\n" for p in paras],
                           suffix=f"Question: {question}<|im_end|>\n<|im_start|>assistant\n")


def test_prefix_cache_hit_prefills_only_new_tokens_with_equal_logits(fp32) -> None:
    tok = smollm.tokenizer()
    pc = PrefixCache(num_blocks=8, block_size=16, model_id="m")
    gen = Generator(fp32, tok, pc)
    first = gen.generate(tok.encode(_turn("What is the capital of France?")), PARAMS)
    assert first.stats.prefix_hit_tokens == 0 and pc.blocks.num_cached_blocks > 0
    gen.generate(tok.encode("Something else entirely, so the engine's own cache does not match."), PARAMS)
    ids = tok.encode(_turn("Who wrote Hamlet?"))
    shared = next(i for i, (a, b) in enumerate(zip(ids, tok.encode(_turn("What is the capital of France?"))))
                  if a != b)
    second = gen.generate(ids, PARAMS)
    st = second.stats
    assert st.prefix_hit_tokens == shared // 16 * 16 > 0
    assert st.prefilled_tokens == len(ids) - st.prefix_hit_tokens and st.prompt_tokens == len(ids)
    assert second.token_ids == Generator(fp32, tok).generate(ids, PARAMS).token_ids  # identical output
    # and the logits of the hit equal a full prefill's (exact in fp32)
    cache = fp32.new_cache(len(ids))
    got = PlainPrefill(fp32, ids, pc)(cache, 0, CacheStats())
    full = fp32(torch.tensor([ids]), 0, fp32.new_cache(len(ids)))[0, -1]
    torch.testing.assert_close(got.logits, full, atol=2e-4, rtol=0)


def test_prefix_cache_keys_are_salted_by_tenant(fp32) -> None:
    tok = smollm.tokenizer()
    gen = Generator(fp32, tok, PrefixCache(num_blocks=8, block_size=16, model_id="m"))
    gen.generate(tok.encode(_turn("Name a colour.")), PARAMS, tenant="a")
    gen.generate(tok.encode("Reset the engine's own cache."), PARAMS, tenant="a")
    other = gen.generate(tok.encode(_turn("Name a fruit.")), PARAMS, tenant="b")
    assert other.stats.prefix_hit_tokens == 0
    gen.generate(tok.encode("Reset the engine's own cache."), PARAMS, tenant="a")
    same = gen.generate(tok.encode(_turn("Name a fruit.")), PARAMS, tenant="a")
    assert same.stats.prefix_hit_tokens > 0


def test_segments_store_chunks_then_reuse_them_in_any_order(fp32_engine: LocalEngine) -> None:
    paras = smollm.hotpot_text(3)
    store = fp32_engine.chunk_store
    s1 = fp32_engine.stream_tokens(_segments(paras, "Who is mentioned first?"), PARAMS)
    "".join(s1)
    chunk_tokens = sum(len(fp32_engine.tokenizer.encode(p + "\n")) for p in paras)
    assert s1.stats.chunk_computed_tokens == chunk_tokens and s1.stats.chunk_reused_tokens == 0
    assert len(store) == 3
    s2 = fp32_engine.stream_tokens(_segments(paras[::-1], "Which place is named?"), PARAMS)
    text = "".join(s2)
    st = s2.stats
    assert text and st.ttft_ms is not None and st.ttft_ms > 0
    assert st.chunk_reused_tokens == chunk_tokens and st.chunk_computed_tokens == 0
    assert st.prefix_hit_tokens > 0  # the system prefix came from the prefix cache
    assert st.recomputed_tokens == round(0.15 * chunk_tokens)
    assert st.prompt_tokens == st.prefix_hit_tokens + chunk_tokens + st.prefilled_tokens


def test_segments_at_ratio_one_equal_full_prefill(fp32_engine: LocalEngine) -> None:
    paras = smollm.hotpot_text(3)
    prompt = _segments(paras[1:], "What is the first document about?")
    fp32_engine.generate(prompt, PARAMS)  # stores the chunks
    reused = fp32_engine.stream_tokens(prompt, PARAMS, blend=BlendConfig(ratio=1.0))
    "".join(reused)
    assert reused.stats.chunk_reused_tokens > 0
    # the same model, no caches at all: a full prefill of the same token ids
    full = Generator(fp32_engine.model, fp32_engine.tokenizer).generate(fp32_engine.encode_prompt(prompt), PARAMS)
    assert reused.token_ids == full.token_ids


def test_segments_are_tokenised_apart_and_validated(fp32_engine: LocalEngine) -> None:
    tok = fp32_engine.tokenizer
    seg = fp32_engine.encode_segments(SegmentedPrompt(prefix="ab", chunks=["cd", "", "ef"], suffix="gh"))
    assert seg.chunks == (tuple(tok.encode("cd")), tuple(tok.encode("ef")))
    assert seg.ids == tok.encode("ab") + tok.encode("cd") + tok.encode("ef") + tok.encode("gh")
    with pytest.raises(InvalidParams):
        SegmentedPrompt(chunks="not a list")
    with pytest.raises(InvalidParams):
        SegmentedPrompt()
    with pytest.raises(InvalidParams):
        SegmentedPrompt(prefix="x", chunks=[1, 2])


def test_int4_reuse_agrees_with_full_prefill_on_the_first_token() -> None:
    smollm.require_model()
    engine = LocalEngine(quant="int4", chunk_store=MemoryChunkStore(), prefix_cache_blocks=0)
    paras = smollm.hotpot_text(4)
    prompt = _segments(paras, "What is the title of the first document?")
    engine.generate(prompt, GenerationParams(max_tokens=1))  # stores the chunks
    one = GenerationParams(max_tokens=1)
    full = Generator(engine.model, engine.tokenizer).generate(engine.encode_prompt(prompt), one)
    for ratio in (0.3, 1.0):
        s = engine.stream_tokens(prompt, one, blend=BlendConfig(ratio=ratio))
        "".join(s)
        assert s.stats.chunk_reused_tokens > 0 and s.token_ids == full.token_ids


def test_without_a_chunk_store_segments_are_prefilled_in_full() -> None:
    smollm.require_model()
    engine = smollm.engine("int4")  # the shared engine: default prefix cache, no chunk store
    prompt = _segments(smollm.hotpot_text(2), "Which document is longer?")
    s = engine.stream_tokens(prompt, GenerationParams(max_tokens=2), tenant="no-store-test")
    "".join(s)
    st = s.stats
    assert st.chunk_reused_tokens == st.chunk_computed_tokens == st.recomputed_tokens == 0
    assert st.prompt_tokens == engine.count_tokens(prompt) == st.prefix_hit_tokens + st.prefilled_tokens
