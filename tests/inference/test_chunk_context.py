"""Cache-Craft exactness: chunk KV stored with the context it was computed in is reused with no
recompute when a prompt repeats that context, and the prompt then equals a full prefill (fp32)."""
from __future__ import annotations

import pytest
import torch

from inference.blend import BlendConfig
from inference.chunk_context import ROOT, ContextIndex, context_after, variant_key
from inference.chunk_store_memory import MemoryChunkStore
from inference.prefill import SegmentPrefill
from inference.segments import CacheStats, TokenSegments
from tests.inference import smollm

EXACT = BlendConfig(ratio=0.15, exact_tail_tokens=10_000)  # a tail is prefilled in full, then stored


def test_contexts_chain_segments_with_their_lengths() -> None:
    a = context_after(context_after(ROOT, [1, 2]), [3])
    assert a == context_after(context_after(ROOT, [1, 2]), [3])
    assert a != context_after(context_after(ROOT, [1]), [2, 3])  # another segmentation never hits
    assert a != context_after(context_after(ROOT, [3]), [1, 2])
    assert variant_key("k", ROOT) == "k" and variant_key("k", a) not in ("k", variant_key("j", a))


def test_context_index_drops_every_variant_computed_after_a_chunk() -> None:
    idx = ContextIndex(max_variants=3)
    idx.add("v1", ["a"])
    idx.add("v2", ["a", "b"])
    idx.add("v3", ["a", "b", "c"])
    assert idx.drop("b") == {"v2", "v3"} and len(idx) == 1
    assert idx.drop("b") == set() and idx.drop("a") == {"v1"}
    for i in range(5):
        idx.add(f"w{i}", ["x"])
    assert len(idx) == 3 and idx.drop("x") == {"w2", "w3", "w4"}  # the oldest were forgotten


@pytest.fixture(scope="module")
def fp32():
    smollm.require_model()
    return smollm.model("fp32")


@pytest.fixture(scope="module")
def parts():
    """(prefix, [4 chunks], suffix, another suffix) token ids, each segment tokenised on its own."""
    smollm.require_model()
    tok = smollm.tokenizer()
    prefix = tok.encode("<|im_start|>system\nAnswer from the notes.\n")
    chunks = [tuple(tok.encode(p[:160] + "\n")) for p in smollm.hotpot_text(4)]
    suffixes = [tok.encode(f"<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n")
                for q in ("Who is mentioned first?", "Name a place.")]
    return tuple(prefix), chunks, *(tuple(s) for s in suffixes)


def run(model, store, index, segs: TokenSegments, blend: BlendConfig):  # noqa: ANN001, ANN201
    """A prefill on a fresh cache (nothing kept, no prefix cache): (logits, exact, stats, cache)."""
    cache, stats = model.new_cache(len(segs.ids)), CacheStats()
    done = SegmentPrefill(model, segs, store, "m", "fp32", None, "t", blend, index)(cache, 0, stats)
    return done.logits, done.exact, stats, cache


def full(model, segs: TokenSegments) -> tuple[torch.Tensor, object]:  # noqa: ANN001
    cache = model.new_cache(len(segs.ids))
    return model(torch.tensor([segs.ids]), 0, cache)[0, -1], cache


def test_a_prompt_whose_chunks_all_repeat_their_context_equals_full_prefill(fp32, parts) -> None:
    prefix, chunks, suffix, other = parts
    store, index = MemoryChunkStore(), ContextIndex()
    first = TokenSegments(prefix, tuple(chunks[:3]), suffix)
    logits, exact, st, _ = run(fp32, store, index, first, EXACT)
    assert exact == len(first.ids) and st.chunk_exact_tokens == 0 and st.recomputed_tokens == 0
    assert st.prefilled_tokens == len(first.ids) and len(store) == 3  # each chunk stored in its context
    torch.testing.assert_close(logits, full(fp32, first)[0], atol=2e-4, rtol=0)

    again = TokenSegments(prefix, tuple(chunks[:3]), other)  # same chunks after the same prefix, new question
    logits, exact, st, cache = run(fp32, store, index, again, BlendConfig(ratio=0.15))
    n_chunk = sum(map(len, chunks[:3]))
    assert st.chunk_exact_tokens == st.chunk_reused_tokens == n_chunk and st.recomputed_tokens == 0
    assert exact == len(again.ids) and st.prefilled_tokens == len(prefix) + len(other)
    want, want_cache = full(fp32, again)
    torch.testing.assert_close(logits, want, atol=2e-4, rtol=0)
    for layer in (0, 29):
        torch.testing.assert_close(cache.k[layer], want_cache.k[layer], atol=2e-4, rtol=0)


def test_an_appended_chunk_is_prefilled_after_the_exact_ones_and_stored(fp32, parts) -> None:
    prefix, chunks, suffix, other = parts
    store, index = MemoryChunkStore(), ContextIndex()
    run(fp32, store, index, TokenSegments(prefix, tuple(chunks[:2]), suffix), EXACT)
    grown = TokenSegments(prefix, tuple(chunks[:3]), other)
    logits, exact, st, _ = run(fp32, store, index, grown, EXACT)
    assert st.chunk_exact_tokens == len(chunks[0]) + len(chunks[1]) and exact == len(grown.ids)
    torch.testing.assert_close(logits, full(fp32, grown)[0], atol=2e-4, rtol=0)
    _, _, st, _ = run(fp32, store, index, grown, EXACT)
    assert st.chunk_exact_tokens == sum(map(len, chunks[:3]))  # the appended chunk was kept in context


def test_after_a_divergence_the_rest_is_blended_and_ratio_one_is_still_exact(fp32, parts) -> None:
    prefix, chunks, suffix, _ = parts
    store, index = MemoryChunkStore(), ContextIndex()
    run(fp32, store, index, TokenSegments(prefix, tuple(chunks[:3]), suffix), EXACT)
    moved = TokenSegments(prefix, (chunks[0], chunks[2], chunks[1]), suffix)  # chunk 0 keeps its context
    for ratio in (0.0, 0.3, 1.0):
        logits, exact, st, _ = run(fp32, store, index, moved, BlendConfig(ratio=ratio))
        assert st.chunk_exact_tokens == len(chunks[0]) and exact == len(prefix) + len(chunks[0])
        n_blended = len(chunks[1]) + len(chunks[2])
        assert st.recomputed_tokens == round(ratio * n_blended)
        assert st.chunk_computed_tokens + st.chunk_reused_tokens - st.chunk_exact_tokens == n_blended
        if ratio == 1.0:
            torch.testing.assert_close(logits, full(fp32, moved)[0], atol=2e-4, rtol=0)


def test_without_exact_context_every_chunk_is_blended(fp32, parts) -> None:
    prefix, chunks, suffix, _ = parts
    store, index = MemoryChunkStore(), ContextIndex()
    segs = TokenSegments(prefix, tuple(chunks[:2]), suffix)
    run(fp32, store, index, segs, EXACT)
    _, exact, st, _ = run(fp32, store, index, segs, BlendConfig(ratio=0.2, exact_context=False))
    assert st.chunk_exact_tokens == 0 and st.recomputed_tokens > 0 and exact == len(prefix)


def test_sink_tokens_come_out_of_the_same_recompute_budget(fp32, parts) -> None:
    prefix, chunks, suffix, _ = parts
    segs = TokenSegments(prefix, tuple(chunks[:3]), suffix)
    n_chunk = sum(map(len, chunks[:3]))
    for sinks in (0, 4):
        store = MemoryChunkStore()
        _, _, st, _ = run(fp32, store, None, segs, BlendConfig(ratio=0.15, sink_tokens=sinks))
        assert st.recomputed_tokens == round(0.15 * n_chunk)
        _, _, st, _ = run(fp32, store, None, segs, BlendConfig(ratio=0.0, sink_tokens=sinks))
        assert st.recomputed_tokens == 0  # ratio 0 stays naive concatenation


def test_discarding_a_chunk_drops_its_variants_and_those_computed_after_it(fp32, parts) -> None:
    from inference.local_engine import LocalEngine
    from inference.segments import SegmentedPrompt

    engine = LocalEngine(quant="fp32", chunk_store=MemoryChunkStore(), prefix_cache_blocks=0,
                         blend=BlendConfig(exact_tail_tokens=10_000))
    tok = engine.tokenizer
    texts = [tok.decode(list(c)) for c in parts[1][:3]]
    prompt = SegmentedPrompt(prefix="<|im_start|>system\nNotes:\n", chunks=texts, suffix="Q?<|im_end|>\n")
    engine.generate(prompt, engine_params())
    assert len(engine.chunk_store) == 3
    assert engine.discard_chunk(texts[1]) == 1 + 2  # its plain key, its variant, the third chunk's
    assert len(engine.chunk_store) == 1
    engine.forget_kept()
    s = engine.stream_tokens(prompt, engine_params())
    "".join(s)
    assert s.stats.chunk_exact_tokens == len(tok.encode(texts[0]))


def test_prepare_context_makes_a_blended_prompt_exact_next_time(fp32, parts) -> None:
    from inference.local_engine import LocalEngine
    from inference.segments import SegmentedPrompt

    engine = LocalEngine(quant="fp32", chunk_store=MemoryChunkStore(), prefix_cache_blocks=0)  # tails blended
    tok = engine.tokenizer
    texts = [tok.decode(list(c)) for c in parts[1][:2]]
    prompt = SegmentedPrompt(prefix="<|im_start|>system\nNotes:\n", chunks=texts, suffix="Q?<|im_end|>\n")
    s = engine.stream_tokens(prompt, engine_params())
    "".join(s)
    assert s.stats.chunk_exact_tokens == 0 and s.stats.recomputed_tokens > 0
    n_chunks = sum(len(tok.encode(t)) for t in texts)
    assert engine.prepare_context(prompt) == n_chunks
    assert engine.prepare_context(prompt) == 0  # already there
    engine.forget_kept()
    s = engine.stream_tokens(prompt, engine_params())
    "".join(s)
    assert s.stats.chunk_exact_tokens == n_chunks and s.stats.recomputed_tokens == 0


def engine_params():  # noqa: ANN201
    from inference.params import GenerationParams

    return GenerationParams(max_tokens=2)
