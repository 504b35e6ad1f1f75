"""In-sequence eviction: the pure selection, the observers, the position convention, and the real
model under a budget (budget >= length gives the plain model's logits; less still generates)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from inference.errors import ContextOverflow, InvalidParams
from inference.kv_evict import SEQ_POLICIES, BudgetedSession, SeqEvictionConfig, select_keep
from inference.kv_evict.compact import compact
from inference.kv_evict.observers import AccumulatedAttention, WindowQueries, attention_probs
from inference.kv_evict.select import pool_scores
from inference.model import TINY_CONFIG, random_model
from tests.inference import smollm

# ---- pure selection ---------------------------------------------------------------------------


def test_budget_at_least_length_keeps_everything_in_order() -> None:
    keep = select_keep(10, 12, n_layers=2, n_heads=3, scores=torch.rand(2, 3, 10))
    assert keep.shape == (2, 3, 10) and torch.equal(keep[1, 2], torch.arange(10))


def test_streaming_keeps_sinks_and_the_most_recent() -> None:
    keep = select_keep(20, 8, n_layers=1, n_heads=2, n_sink=2)
    assert keep[0, 0].tolist() == [0, 1, 14, 15, 16, 17, 18, 19] and torch.equal(keep[0, 0], keep[0, 1])


def test_scored_selection_is_per_head_with_sinks_and_window_forced() -> None:
    scores = torch.zeros(1, 2, 20)
    scores[0, 0, [5, 9]] = 1.0  # head 0 values slots 5 and 9
    scores[0, 1, [6, 7]] = 1.0  # head 1 slots 6 and 7
    scores[0, :, 0] = -5  # a sink with a low score is kept anyway
    keep = select_keep(20, 7, n_layers=1, n_heads=2, n_sink=1, n_recent=4, scores=scores)
    assert keep[0, 0].tolist() == [0, 5, 9, 16, 17, 18, 19]
    assert keep[0, 1].tolist() == [0, 6, 7, 16, 17, 18, 19]


def test_selection_rejects_an_empty_target_and_pooling_keeps_shape() -> None:
    with pytest.raises(InvalidParams):
        select_keep(10, 0, 1, 1)
    x = torch.zeros(2, 3, 11)
    x[..., 5] = 5.0
    pooled = pool_scores(x, 5)
    assert pooled.shape == x.shape and pooled[0, 0, 3] > 0 and pooled[0, 0, 0] == 0


def test_attention_probs_are_causal_and_grouped() -> None:
    q, k = torch.randn(4, 3, 8), torch.randn(2, 5, 8)  # 4 query heads over 2 KV heads; queries at slots 2..4
    p = attention_probs(q, k, first_slot=2)
    assert p.shape == (2, 5)
    torch.testing.assert_close(p.sum(-1), torch.full((2,), 6.0))  # 2 heads x 3 queries, each row sums to 1
    # the query at slot 2 alone sees slots 0..2: slot 3 only from later queries
    only_first = attention_probs(q[:, :1], k[:, :3], first_slot=2)
    torch.testing.assert_close(only_first.sum(-1), torch.full((2,), 2.0))


def test_snapkv_window_scores_the_keys_its_queries_attend_to() -> None:
    obs = WindowQueries(n_layers=1, window=4, kernel=1)
    u = torch.randn(8)
    k = 0.01 * torch.randn(1, 2, 12, 8)
    k[0, 0, 3] = 3 * u  # KV head 0: slot 3 answers the window's queries
    k[0, 1, 7] = 3 * u  # KV head 1: slot 7
    obs.observe(0, torch.randn(1, 4, 6, 8), k[:, :, :6], 0)  # a first piece; only its last 4 remain
    obs.observe(0, u.expand(1, 4, 6, 8).clone(), k, 6)  # the window: 4 query heads, slots 6..11
    assert obs.q[0].shape == (4, 4, 8)
    scores = obs.scores(0, k)
    assert scores.shape == (2, 12) and scores[0].argmax() == 3 and scores[1].argmax() == 7
    obs.compact(torch.zeros(1, 2, 1, dtype=torch.long))
    assert obs.scores(0, k).sum() == 0  # a fresh window after compaction


def test_config_is_validated() -> None:
    for bad in (dict(budget=64, policy="random"), dict(budget=1), dict(budget=64, n_sink=30, n_recent=30)):
        with pytest.raises(InvalidParams):
            SeqEvictionConfig(**bad).validate()


# ---- the position convention on a one-layer model ----------------------------------------------


def test_kept_keys_keep_their_positions_and_new_tokens_continue_at_the_true_position() -> None:
    """In a one-layer model a token's K/V depend only on the token and its position, so the
    compacted cache must equal one built from the kept tokens alone at their original positions."""
    model = random_model(dataclasses.replace(TINY_CONFIG, n_layers=1))
    tokens = torch.randint(0, TINY_CONFIG.vocab_size, (24,), generator=torch.Generator().manual_seed(3)).tolist()
    cache = model.new_cache(32)
    model(torch.tensor([tokens[:20]]), 0, cache)
    keep = select_keep(20, 8, 1, TINY_CONFIG.n_kv_heads, n_sink=3)  # slots 0,1,2, 15..19
    compact(cache, keep)
    assert cache.length == 8 and cache.pos_offset == 12
    got = model(torch.tensor([tokens[20:24]]), cache.length, cache, last_only=False)  # true positions 20..23

    ref = model.new_cache(32)
    for slot, pos in enumerate(keep[0, 0].tolist()):
        ref.pos_offset = pos - slot  # each kept token at its original position
        model(torch.tensor([[tokens[pos]]]), slot, ref)
    ref.pos_offset = 20 - 8
    want = model(torch.tensor([tokens[20:24]]), 8, ref, last_only=False)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)  # fp32 rounding of two call shapes
    # and it is not the no-eviction result: the convention is what is being tested
    full = model(torch.tensor([tokens]), 0, model.new_cache(32), last_only=False)[:, 20:]
    assert (full - got).abs().max() > 1e-3


def test_h2o_accumulates_one_unit_of_attention_per_query_head_and_follows_compaction() -> None:
    model = random_model(TINY_CONFIG)
    cache = model.new_cache(32)
    obs = AccumulatedAttention(TINY_CONFIG.n_layers, TINY_CONFIG.n_kv_heads, 32, block=4)
    cache.observer = obs
    tokens = torch.randint(0, TINY_CONFIG.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    model(tokens[:, :10], 0, cache)
    model(tokens[:, 10:11], 10, cache)
    model(tokens[:, 11:12], 11, cache)
    for acc in obs.acc:
        torch.testing.assert_close(acc.sum(), torch.tensor(12.0 * TINY_CONFIG.n_heads))
    before = obs.acc[1][:, [0, 5, 11]].clone()
    compact(cache, torch.tensor([0, 5, 11]).expand(TINY_CONFIG.n_layers, TINY_CONFIG.n_kv_heads, 3))
    assert torch.equal(obs.acc[1][:, :3], before) and obs.acc[1][:, 3:].sum() == 0


# ---- the real model -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def turns() -> list[list[int]]:
    """A conversation of three turns of real text, ~230 tokens each."""
    smollm.require_model()
    tok = smollm.tokenizer()
    paras = smollm.hotpot_text(12)
    ids = [tok.encode("\n".join(paras[i : i + 3]))[:230] for i in (0, 3, 6)]
    assert all(len(t) == 230 for t in ids)
    return ids


@pytest.mark.parametrize("policy", SEQ_POLICIES)
def test_budget_covering_everything_gives_the_plain_models_logits(policy: str, turns: list[list[int]]) -> None:
    model = smollm.model("fp32")
    session = BudgetedSession(model, SeqEvictionConfig(budget=800, policy=policy))
    plain = model.new_cache(800)
    got_a = session.feed(turns[0], all_logits=True)
    want_a = model(torch.tensor([turns[0]]), 0, plain, last_only=False)[0]
    session.compact(session.cache.length)  # an eviction pass with room for all: keeps everything
    got_b = session.feed(turns[1], all_logits=True)
    want_b = model(torch.tensor([turns[1]]), 230, plain, last_only=False)[0]
    reply = session.generate(8, first_logits=got_b[-1])
    want_reply, logits = [], want_b[-1]
    for i in range(8):
        want_reply.append(int(logits.argmax()))
        logits = model(torch.tensor([[want_reply[-1]]]), 460 + i, plain)[0, -1]
    assert torch.equal(got_a, want_a) and torch.equal(got_b, want_b)
    assert reply == want_reply and session.evictions == 0 and session.position == 468


@pytest.mark.parametrize("policy", SEQ_POLICIES)
def test_a_conversation_longer_than_the_budget_still_generates(policy: str, turns: list[list[int]]) -> None:
    model = smollm.model("fp32")
    budget = 160
    session = BudgetedSession(model, SeqEvictionConfig(budget=budget, policy=policy))
    plain = model.new_cache(800)
    agree = total = 0
    for t, ids in enumerate(turns):
        got = session.feed(ids, all_logits=True)
        want = model(torch.tensor([ids]), 230 * t, plain, last_only=False)[0]
        assert session.cache.length <= budget
        if t > 0:  # the first turn's first window is evicted-free; compare what comes after eviction
            agree += int((got.argmax(-1) == want.argmax(-1)).sum())
            total += len(ids)
    reply = session.generate(16, first_logits=got[-1])
    assert len(reply) == 16 and session.cache.length <= budget
    assert session.position == 3 * 230 + 16 and session.evictions >= 4
    # a model that lost track of positions (wrong RoPE) agrees far less than this with full attention
    assert agree / total > 0.5, agree / total
    assert smollm.tokenizer().decode(reply).strip()


def test_feeding_past_the_model_context_is_refused() -> None:
    model = random_model(TINY_CONFIG)
    session = BudgetedSession(model, SeqEvictionConfig(budget=64))
    with pytest.raises(ContextOverflow):
        session.feed(list(range(TINY_CONFIG.context_length + 1)))
