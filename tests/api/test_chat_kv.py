"""Memory-aware chunk caching on the real engine and the real tiered store: a note's retention is
its chunk's predicted reuse, and archive / delete / edit drop the chunk's KV."""
from __future__ import annotations

import uuid

import pytest

from api.chat.context import note_text
from api.chat.memory_kv import MemoryKV
from api.chat.turn import ChatPipeline, ChatRequest
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
    key = pipeline.kv.key_of(TENANT, note_text(note))
    assert entry(pipeline.engine, key) is not None, "the turn computed and stored the note's chunk"
    return key


def test_a_used_note_is_cached_under_its_tenant_salted_key_with_its_retention(pipeline, mem) -> None:
    note = mem.add("I keep bees on the roof of my flat in Lisbon.", user_id="ann")[0]
    out = turn(pipeline, mem, "Tell me about my bees.")
    assert note.id in {m["id"] for m in out.memories}
    key = cached_key(pipeline, mem, note)
    assert pipeline.kv.reuse_of(TENANT, note.id) == key
    assert key != pipeline.kv.key_of("another-tenant", note_text(note))
    recalled = mem.store.get(note.id)
    assert entry(pipeline.engine, key).reuse == pytest.approx(mem.retention(recalled))


def test_a_fading_note_gets_a_lower_reuse_than_a_recalled_one(pipeline, mem, clock) -> None:
    old = mem.add("My first car was a red Fiat Panda.", user_id="ann")[0]
    turn(pipeline, mem, "What was my first car?")
    clock.advance(days=40)
    new = mem.add("I am learning to play the cello on Tuesdays.", user_id="ann")[0]
    out = turn(pipeline, mem, "Which instrument am I learning on Tuesdays?", top_k=1)
    used = {m["id"] for m in out.memories}
    assert new.id in used and old.id not in used
    fading, fresh = entry(pipeline.engine, cached_key(pipeline, mem, old)), entry(pipeline.engine, cached_key(pipeline, mem, new))
    assert fading.reuse < 0.9 * fresh.reuse
    assert fading.reuse == pytest.approx(mem.retention(mem.store.get(old.id)))


@pytest.mark.parametrize("change", ["delete", "edit", "archive"])
def test_archive_delete_and_edit_drop_the_notes_cache(pipeline, mem, clock, change) -> None:
    note = mem.add("My passport number ends in 4471.", user_id="ann", importance=0.1)[0]
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
    assert pipeline.kv.reuse_of(TENANT, note.id) is None


def test_notes_written_back_are_warmed_for_the_next_turn(pipeline, mem) -> None:
    # a fresh text per run: the engine's store is shared by every test (and every backend's run)
    request = ChatRequest(f"I grow {uuid.uuid4().hex[:6]} tomatoes on my balcony.", user_id="ann", max_tokens=4)
    result = pipeline.run(TENANT, mem, request)
    assert len(result.notes) == 2 and "notes" not in result.as_dict()
    keys = [pipeline.kv.key_of(TENANT, note_text(n)) for n in result.notes]
    assert all(entry(pipeline.engine, k) is None for k in keys)
    assert pipeline.warm(TENANT, result) == 2
    assert all(entry(pipeline.engine, k) is not None for k in keys)
    assert pipeline.warm(TENANT, result) == 0  # already there
    out = turn(pipeline, mem, "What do I grow on my balcony?")
    used = {m["id"] for m in out.memories}
    assert result.notes[0].id in used and out.stats["chunk_reused_tokens"] > 0
