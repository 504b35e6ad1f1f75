"""Memory-aware chunk caching on the real engine and the real tiered store: a note's retention is
its chunk's predicted reuse, and archive / delete / edit drop the chunk's KV."""
from __future__ import annotations

import uuid

import pytest

from api.chat.context import note_text
from api.chat.memory_kv import MemoryKV
from api.chat.turn import ChatConfig, ChatPipeline, ChatRequest
from tests.api.chat_support import engine  # noqa: F401

TENANT = "kv-tests"


@pytest.fixture()
def pipeline(engine):  # noqa: F811
    return ChatPipeline(engine, kv=MemoryKV(engine))


def turn(pipeline, mem, message, top_k=None):
    return pipeline.run(TENANT, mem, ChatRequest(message, user_id="ann", max_tokens=4, remember=False, top_k=top_k))


def entry(engine, key):  # noqa: F811
    store = engine.chunk_store
    return store.ram.entry(key) or (store.disk.entry(key) if store.disk is not None else None)


def cached_key(pipeline, mem, note):
    """A store key under which the turn kept the note's chunk KV (alone or in its context)."""
    keys = [k for k in pipeline.kv.keys_of(TENANT, note_text(note)) if entry(pipeline.engine, k) is not None]
    assert keys, "the turn computed and stored the note's chunk"
    return keys[-1]


def test_a_used_note_is_cached_under_its_tenant_salted_key_with_its_retention(pipeline, mem) -> None:
    note = mem.add("I keep bees on the roof of my flat in Lisbon.", user_id="ann")[0]
    out = turn(pipeline, mem, "Tell me about my bees.")
    assert note.id in {m["id"] for m in out.memories}
    key = cached_key(pipeline, mem, note)
    assert pipeline.kv.reuse_of(TENANT, note.id) == pipeline.kv.key_of(TENANT, note_text(note))
    assert key not in pipeline.kv.keys_of("another-tenant", note_text(note))
    recalled = mem.store.get(note.id)
    assert entry(pipeline.engine, key).reuse == pytest.approx(mem.retention(recalled))


def test_a_fading_note_gets_a_lower_reuse_than_a_recalled_one(pipeline, mem, clock) -> None:
    old = mem.add("My first car was a red Fiat Panda.", user_id="ann")[0]
    turn(pipeline, mem, "What was my first car?")
    clock.advance(days=40)
    new = mem.add("I am learning to play the cello on Tuesdays.", user_id="ann")[0]
    out = turn(pipeline, mem, "Which instrument am I learning on Tuesdays?", top_k=1)
    used = {m["id"] for m in out.memories if m["retrieved"]}  # the old one may be carried over, not retrieved
    assert new.id in used and old.id not in used
    fading, fresh = entry(pipeline.engine, cached_key(pipeline, mem, old)), entry(pipeline.engine, cached_key(pipeline, mem, new))
    assert fading.reuse < 0.9 * fresh.reuse
    assert fading.reuse == pytest.approx(mem.retention(mem.store.get(old.id)))


@pytest.mark.parametrize("change", ["delete", "edit", "archive"])
def test_archive_delete_and_edit_drop_the_notes_cache(pipeline, mem, clock, change) -> None:
    # a fresh number per run: the engine (and the KV it keeps from its last prompt) is shared by every test
    note = mem.add(f"My passport number ends in {uuid.uuid4().int % 10_000:04d}.", user_id="ann", importance=0.1)[0]
    turn(pipeline, mem, "What does my passport number end in?")
    key = cached_key(pipeline, mem, note)
    if change == "delete":
        mem.delete(note.id)
    elif change == "edit":
        mem.update(note.id, content="My passport number ends in 9902.")
    else:
        clock.advance(days=3650)
        assert note.id in mem.consolidate(user_id="ann")
    assert entry(pipeline.engine, key) is None
    assert all(entry(pipeline.engine, k) is None for k in pipeline.kv.keys_of(TENANT, note_text(note)))
    assert pipeline.kv.reuse_of(TENANT, note.id) is None


def test_notes_written_back_are_warmed_for_the_next_turn(engine, mem) -> None:  # noqa: F811
    # new memories are blended from their KV computed alone (not prefilled), so warming pays off
    pipeline = ChatPipeline(engine, ChatConfig(exact_tail_tokens=0), kv=MemoryKV(engine))
    # a fresh text per run: the engine's store is shared by every test (and every backend's run)
    request = ChatRequest(f"I grow {uuid.uuid4().hex[:6]} tomatoes on my balcony.", user_id="ann", max_tokens=4)
    result = pipeline.run(TENANT, mem, request)
    assert len(result.notes) == 2 and "notes" not in result.as_dict()
    keys = [pipeline.kv.key_of(TENANT, note_text(n)) for n in result.notes]
    # the reply of 4 tokens can repeat an earlier run's (the other backend's) word for word, and
    # then its chunk is in the shared store already: start both notes from no cache
    for note in result.notes:
        pipeline.kv.forget(TENANT, note)
    assert all(entry(pipeline.engine, k) is None for k in keys)
    assert pipeline.warm(TENANT, result) >= 2  # and the blended prompt completed in context
    assert all(entry(pipeline.engine, k) is not None for k in keys)
    assert pipeline.warm(TENANT, result) == 0  # already there
    out = turn(pipeline, mem, "What do I grow on my balcony?")
    used = {m["id"] for m in out.memories}
    assert result.notes[0].id in used and out.stats["chunk_reused_tokens"] > 0
