"""The sticky memory window: pure ordering rules, then two real turns on the real engine."""
from __future__ import annotations

import pytest

from api.chat.context import ContextChunk
from api.chat.window import MemoryWindows, sticky
from tests.api.chat_support import engine  # noqa: F401


def chunk(i: str, n: int = 10, kind: str = "note", text: str | None = None) -> ContextChunk:
    return ContextChunk(kind, i, text or f"- {i}\n", i, n, 1.0, 1.0, None)


def ids(chunks) -> list[str]:  # noqa: ANN001
    return [c.id for c in chunks]


def test_the_window_keeps_the_last_order_and_appends_new_memories() -> None:
    first = sticky([], [chunk("a"), chunk("b"), chunk("c")], budget=100)
    assert ids(first) == ["a", "b", "c"] and all(c.retrieved for c in first)
    second = sticky(first, [chunk("c"), chunk("d"), chunk("a")], budget=100)
    assert ids(second) == ["a", "b", "c", "d"]
    assert [c.retrieved for c in second] == [True, False, True, True]  # b is carried over


def test_carried_memories_leave_from_the_back_when_the_budget_is_short() -> None:
    prev = [chunk("a"), chunk("b"), chunk("c"), chunk("d")]
    out = sticky(prev, [chunk("a"), chunk("e"), chunk("f")], budget=50)
    assert ids(out) == ["a", "b", "c", "e", "f"]  # d went first: the run a, b, c stays exact
    out = sticky(prev, [chunk("d"), chunk("e"), chunk("f"), chunk("g")], budget=50)
    assert ids(out) == ["a", "d", "e", "f", "g"]  # every retrieved memory is in, whatever it costs


def test_an_edited_memory_is_another_chunk() -> None:
    out = sticky([chunk("a"), chunk("b")], [chunk("a", text="- a, edited\n")], budget=100)
    assert [(c.id, c.text, c.retrieved) for c in out] == [("a", "- a\n", False), ("b", "- b\n", False),
                                                         ("a", "- a, edited\n", True)]


def test_windows_are_per_conversation_and_drop_invalid_memories() -> None:
    w = MemoryWindows(max_conversations=2)
    w.remember("ann", [chunk("a"), chunk("b")])
    assert ids(w.arrange("ann", [chunk("c")], 100, valid=lambda carried: {"b"})) == ["b", "c"]
    assert ids(w.arrange("bob", [chunk("c")], 100, valid=lambda carried: {"a", "b"})) == ["c"]
    w.remember("bob", [])
    w.remember("cid", [])
    assert ids(w.arrange("ann", [chunk("c")], 100, valid=lambda carried: {"a", "b"})) == ["c"]  # forgotten


@pytest.fixture()
def pipeline(engine):  # noqa: F811
    from api.chat.memory_kv import MemoryKV
    from api.chat.turn import ChatPipeline

    return ChatPipeline(engine, kv=MemoryKV(engine))


def test_the_next_turn_extends_the_last_prompt_and_reuses_its_kv_exactly(pipeline, mem) -> None:
    from api.chat.turn import ChatRequest

    bees = mem.add("I keep bees on the roof of my flat in Lisbon.", user_id="ann")[0]
    mem.add("My sister Eva is a doctor in Porto.", user_id="ann")
    cello = mem.add("I am learning to play the cello on Tuesdays.", user_id="ann")[0]
    first = pipeline.run("win", mem, ChatRequest("Tell me about my bees.", user_id="ann", max_tokens=2,
                                                 remember=False, top_k=1))
    assert [m["id"] for m in first.memories] == [bees.id]
    pipeline.engine.forget_kept()  # as if another conversation had run: only the chunk store can help
    second = pipeline.run("win", mem, ChatRequest("Which instrument am I learning?", user_id="ann", max_tokens=2,
                                                  remember=False, top_k=1))
    assert [(m["id"], m["retrieved"]) for m in second.memories] == [(bees.id, False), (cello.id, True)]
    assert second.stats["chunk_exact_tokens"] > 0  # the bees chunk, stored after the same prefix
    assert second.stats["recomputed_tokens"] == 0
    mem.delete(bees.id)
    third = pipeline.run("win", mem, ChatRequest("Which instrument am I learning?", user_id="ann", max_tokens=2,
                                                 remember=False, top_k=1))
    assert [m["id"] for m in third.memories] == [cello.id]  # a deleted memory leaves the window at once


@pytest.mark.parametrize(("window", "carried"), [(1024, 2), (0, 0)])
def test_the_window_carries_earlier_turns_memories_up_to_its_own_budget(engine, mem, window, carried) -> None:  # noqa: F811
    from api.chat.memory_kv import MemoryKV
    from api.chat.turn import ChatConfig, ChatPipeline, ChatRequest

    notes = [mem.add(text, user_id="ann")[0] for text in (
        "I keep bees on the roof of my flat in Lisbon.", "My sister Eva is a doctor in Porto.",
        "I am learning to play the cello on Tuesdays.")]
    # one turn's retrieval holds one memory; the window holds every memory of the conversation
    # (1,024 tokens) or, below the retrieval budget (0), only this turn's
    pipeline = ChatPipeline(engine, ChatConfig(context_tokens=40, window_tokens=window), kv=MemoryKV(engine))
    for question in ("Tell me about my bees.", "What does my sister do?", "Which instrument am I learning?"):
        last = pipeline.run("carry", mem, ChatRequest(question, user_id="ann", max_tokens=1, remember=False, top_k=1))
    used = [(m["id"], m["retrieved"]) for m in last.memories]
    assert used == [(n.id, False) for n in notes[2 - carried:2]] + [(notes[2].id, True)]


def test_the_service_passes_its_window_budget_to_the_chat_pipeline(engine) -> None:  # noqa: F811
    from api.app import _pipeline
    from api.settings import Settings

    assert _pipeline(engine, Settings(chat_window_tokens=2048)).config.window_tokens == 2048
