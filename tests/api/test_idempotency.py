"""Idempotent adds: a retried add under the same key stores nothing new and returns the first
try's notes; the same key for another request is a Conflict. Embedded on SQLite and PostgreSQL
(also two threads racing with one key), then over REST and through the SDK."""
from __future__ import annotations

import threading

import pytest

from api.client import Client
from memory.errors import Conflict, InvalidInput
from tests.api.rest_support import rest  # noqa: F401  (fixture)

TURNS = [{"role": "user", "content": "My sister Ana lives in Porto."},
         {"role": "assistant", "content": "Noted: Ana lives in Porto."}]


def test_a_retry_returns_the_first_notes_and_stores_nothing(mem, clock):
    first = mem.add(TURNS, user_id="ann", idempotency_key="req-1")
    before = [mem.history(n.id) for n in first]
    clock.advance(minutes=5)  # no timestamp given: "now" differs, the request does not
    again = mem.add(TURNS, user_id="ann", idempotency_key="req-1")
    assert [n.id for n in again] == [n.id for n in first]
    assert [n.content for n in again] == [t["content"] for t in TURNS]
    assert len(mem.get_all(user_id="ann")) == 2
    assert [mem.history(n.id) for n in first] == before  # nothing written, not even an evolution
    # Without a key, the same request is simply another add.
    mem.add(TURNS, user_id="ann")
    assert len(mem.get_all(user_id="ann")) == 4


def test_the_key_with_another_request_is_a_conflict_and_stores_nothing(mem):
    mem.add("I moved to Lisbon in May.", user_id="ann", idempotency_key="req-2")
    for other in ({"data": "I moved to Berlin in May.", "user_id": "ann"},
                  {"data": "I moved to Lisbon in May.", "user_id": "bob"},
                  {"data": "I moved to Lisbon in May.", "user_id": "ann", "metadata": {"source": "sms"}}):
        data = other.pop("data")
        with pytest.raises(Conflict, match="different request"):
            mem.add(data, idempotency_key="req-2", **other)
    assert [n.content for n in mem.get_all(user_id="ann")] == ["I moved to Lisbon in May."]
    assert mem.get_all(user_id="bob") == []


@pytest.mark.parametrize("key", ["", "k" * 256, "line\nbreak", 7])
def test_bad_keys_are_refused_before_anything_is_stored(mem, key):
    with pytest.raises(InvalidInput, match="idempotency key"):
        mem.add("I moved to Lisbon in May.", user_id="ann", idempotency_key=key)
    assert mem.get_all(user_id="ann") == []


def test_two_threads_racing_with_one_key_store_one_copy(mem):
    results: list[list[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def add() -> None:
        start.wait()
        try:
            results.append([n.id for n in mem.add(TURNS, user_id="ann", idempotency_key="race")])
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=add) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 2
    assert results[0] == results[1]
    assert sorted(n.id for n in mem.get_all(user_id="ann")) == sorted(results[0])
    # The loser's rows were taken out of the derived index again: search sees one copy.
    hits = mem.search("Where does my sister live?", user_id="ann", top_k=10)
    assert sorted(h.id for h in hits) == sorted(results[0])


def test_rest_header_and_sdk(rest):  # noqa: F811
    body = {"content": "I moved to Lisbon in May.", "user_id": "ivy"}
    headers = {**rest.acme, "Idempotency-Key": "rest-1"}
    first = rest.client.post("/v1/memories", json=body, headers=headers)
    again = rest.client.post("/v1/memories", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert [n["id"] for n in again.json()["results"]] == [n["id"] for n in first.json()["results"]]
    other = rest.client.post("/v1/memories", json={**body, "content": "I moved to Rome."}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "conflict"
    # Keys belong to a tenant: another tenant's key of the same name is its own.
    elsewhere = rest.client.post("/v1/memories", json=body, headers={**rest.globex, "Idempotency-Key": "rest-1"})
    assert elsewhere.status_code == 201 and elsewhere.json()["results"][0]["id"] != first.json()["results"][0]["id"]
    listed = rest.client.get("/v1/memories", params={"user_id": "ivy"}, headers=rest.acme).json()["results"]
    assert [n["content"] for n in listed] == ["I moved to Lisbon in May."]

    sdk = Client(api_key=rest.acme["Authorization"].split(" ", 1)[1], http=rest.client)
    made = sdk.add("I like trams.", user_id="ivy", idempotency_key="sdk-1")
    assert sdk.add("I like trams.", user_id="ivy", idempotency_key="sdk-1")[0]["id"] == made[0]["id"]
    with pytest.raises(Conflict):
        sdk.add("I like buses.", user_id="ivy", idempotency_key="sdk-1")
    assert len(sdk.get_all(user_id="ivy")) == 2


def test_the_store_refuses_a_taken_key_and_writes_nothing_of_that_add(mem):
    """What a racing second writer meets (the embedded API turns it into a replay)."""
    from memory.errors import IdempotencyKeyTaken
    from memory.types import Idempotency

    first = mem.add("I moved to Lisbon in May.", user_id="ann", idempotency_key="store-1")
    draft = mem.add("I like trams.", user_id="ann")[0]  # a real note row to try again with a new id
    draft.id = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(IdempotencyKeyTaken):
        mem.store.insert([draft], [None], "m", "user", idempotency=Idempotency("store-1", "x" * 64))
    assert draft.id not in mem.store.get_many([draft.id])
    assert mem.store.idempotent("store-1")[1] == [first[0].id]
