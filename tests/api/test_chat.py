"""``/v1/chat`` on the real service: real SQLite, FAISS, MiniLM and the real SmolLM2 engine with a
tiered chunk store. Replies are short (max_tokens small): what is asserted is the memory path
(retrieval into the prompt, chunk KV reuse across turns, write-back), not the model's wit."""
from __future__ import annotations

import json

import pytest

from tests.api.chat_support import chat_rest, engine, start_chat  # noqa: F401

pytestmark = pytest.mark.usefixtures("chat_rest")
LISBON = "I moved to Lisbon in May and I love the trams there."


def add(rest, headers, content, user="ann", when="2026-05-03T10:00:00Z") -> str:
    r = rest.client.post("/v1/memories", json={"content": content, "user_id": user, "timestamp": when}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["results"][0]["id"]


def chat(rest, headers, message, user="ann", **extra) -> dict:
    body = {"user_id": user, "message": message, "max_tokens": 24, **extra}
    r = rest.client.post("/v1/chat", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_turn_uses_the_memory_and_writes_the_exchange_back(chat_rest) -> None:
    note_id = add(chat_rest, chat_rest.acme, LISBON)
    out = chat(chat_rest, chat_rest.acme, "Which city do I live in?")
    assert out["reply"].strip() and out["finish_reason"] in ("stop", "length")
    used = {m["id"]: m for m in out["memories"]}
    assert note_id in used and used[note_id]["content"] == LISBON and used[note_id]["kind"] == "note"
    stats = out["stats"]
    memory_kv = stats["chunk_computed_tokens"] + stats["chunk_reused_tokens"] + stats["chunk_stored_tokens"]
    assert stats["prompt_tokens"] > 0 and memory_kv > 0
    assert stats["ttft_ms"] > 0 and stats["total_ms"] >= stats["ttft_ms"]
    assert len(out["written"]) == 2
    notes = chat_rest.client.get("/v1/memories", params={"user_id": "ann"}, headers=chat_rest.acme).json()["results"]
    roles = {n["id"]: n["metadata"].get("role") for n in notes}
    assert [roles[i] for i in out["written"]] == ["user", "assistant"]


def test_the_next_turn_reuses_the_chunks_of_memories_it_retrieves_again(chat_rest) -> None:
    add(chat_rest, chat_rest.acme, "My sister Eva is a doctor in Porto.", when="2026-06-01T09:00:00Z")
    first = chat(chat_rest, chat_rest.acme, "What does my sister do?", remember=False)
    second = chat(chat_rest, chat_rest.acme, "Tell me about my sister Eva.", remember=False)
    again = {m["id"] for m in first["memories"]} & {m["id"] for m in second["memories"]}
    assert again, "the two questions retrieve common memories"
    # the memory window starts with the first turn's memories: their KV is not computed again
    tokens_again = sum(m["tokens"] for m in second["memories"] if m["id"] in again)
    st = second["stats"]
    assert st["prefilled_tokens"] <= st["prompt_tokens"] - tokens_again
    assert st["prefix_hit_tokens"] + st["chunk_reused_tokens"] >= tokens_again
    assert first["written"] == [] and second["written"] == []


def test_streaming_sends_memories_tokens_and_the_final_reply(chat_rest) -> None:
    body = {"user_id": "ann", "message": "Where do I live?", "max_tokens": 16, "stream": True, "remember": False}
    with chat_rest.client.stream("POST", "/v1/chat", json=body, headers=chat_rest.acme) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r.iter_lines())
    kinds = [e for e, _ in events]
    assert kinds[0] == "memories" and kinds[-1] == "done" and "token" in kinds
    text = "".join(d["text"] for e, d in events if e == "token")
    done = events[-1][1]
    assert text == done["reply"] and done["memories"] == events[0][1]["memories"]
    assert any(m["content"] == LISBON for m in done["memories"])


def test_tenants_never_see_each_others_memories(chat_rest) -> None:
    out = chat(chat_rest, chat_rest.globex, "Which city do I live in?", remember=False)
    assert all(m["content"] != LISBON for m in out["memories"])


@pytest.mark.parametrize("body, status, code", [
    ({"message": "hi"}, 400, "scope_required"),
    ({"user_id": "ann", "message": ""}, 422, "validation_error"),
    ({"user_id": "ann", "message": "hi", "max_tokens": 100000}, 400, "invalid_input"),
    ({"user_id": "ann", "message": "hi", "history": [{"role": "system", "content": "x"}]}, 422, "validation_error"),
])
def test_bad_requests_get_a_json_error(chat_rest, body, status, code) -> None:
    r = chat_rest.client.post("/v1/chat", json=body, headers=chat_rest.acme)
    assert (r.status_code, r.json()["code"]) == (status, code)


def test_a_bad_streaming_request_fails_before_the_stream_starts(chat_rest) -> None:
    r = chat_rest.client.post("/v1/chat", json={"message": "hi", "stream": True}, headers=chat_rest.acme)
    assert (r.status_code, r.json()["code"]) == (400, "scope_required")


def test_without_a_key_chat_is_refused(chat_rest) -> None:
    assert chat_rest.client.post("/v1/chat", json={"user_id": "ann", "message": "hi"}).status_code == 401


def test_without_a_model_chat_answers_503(tmp_path, embedder) -> None:
    from tests.api.chat_support import make_tenants
    from tests.api.rest_support import bearer

    client, _ = start_chat(tmp_path, embedder, None, llm="none")
    with client:
        key = make_tenants(client)["acme"]
        r = client.post("/v1/chat", json={"user_id": "ann", "message": "hi"}, headers=bearer(key))
    assert (r.status_code, r.json()["code"]) == (503, "llm_unavailable")


def _events(lines) -> list[tuple[str, dict]]:
    out, event = [], None
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[len("data: "):])))
    return out
