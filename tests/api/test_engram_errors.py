"""Bad input raises a typed error from one hierarchy, and nothing already stored is lost."""
import pytest

from memory.errors import (
    ContentTooLarge,
    EmptyContent,
    EngramError,
    InvalidFilter,
    InvalidInput,
    InvalidTimestamp,
    NotFound,
    ScopeRequired,
)


@pytest.fixture()
def seeded(mem):
    mem.add("The first note that must survive every bad call.", user_id="ann")
    return mem


BAD_ADDS = [
    (ScopeRequired, lambda m: m.add("x")),
    (ScopeRequired, lambda m: m.add("x", user_id="")),
    (ScopeRequired, lambda m: m.add("x", user_id=5)),
    (EmptyContent, lambda m: m.add("   ", user_id="ann")),
    (EmptyContent, lambda m: m.add([{"role": "user", "content": ""}], user_id="ann")),
    (InvalidInput, lambda m: m.add([], user_id="ann")),
    (InvalidInput, lambda m: m.add(42, user_id="ann")),
    (InvalidInput, lambda m: m.add([{"role": "wizard", "content": "x"}], user_id="ann")),
    (InvalidInput, lambda m: m.add("nul\x00byte", user_id="ann")),
    (ContentTooLarge, lambda m: m.add("x" * 100_001, user_id="ann")),
    (InvalidInput, lambda m: m.add("x", user_id="ann", metadata=["not", "a", "dict"])),
    (InvalidInput, lambda m: m.add("x", user_id="ann", metadata={"f": float("nan")})),
    (InvalidInput, lambda m: m.add("x", user_id="ann", importance=3)),
    (InvalidTimestamp, lambda m: m.add("x", user_id="ann", timestamp="last tuesday-ish")),
    # one bad turn in a batch: nothing of the batch is stored
    (EmptyContent, lambda m: m.add([{"role": "user", "content": "fine"}, {"role": "user", "content": " "}],
                                   user_id="ann")),
    (EmptyContent, lambda m: m.add_many([{"content": "ok", "user_id": "ann"}, {"content": "", "user_id": "ann"}])),
]


@pytest.mark.parametrize(("error", "call"), BAD_ADDS)
def test_bad_writes_raise_typed_errors_and_store_nothing(seeded, error, call):
    before = seeded.stats()
    with pytest.raises(error) as info:
        call(seeded)
    assert isinstance(info.value, EngramError) and info.value.code
    assert seeded.stats() == before
    assert len(seeded.get_all(user_id="ann")) == 1


def test_add_many_batch_over_the_limit_fails_before_embedding(seeded):
    """add_many drafts and embeds a batch on two threads: an oversize batch must fail before the
    embedding of all its notes starts, not after it."""
    limit = seeded.config.max_batch
    records = [{"content": f"note {i}", "user_id": "ann"} for i in range(limit + 1)]
    embedded = seeded.add_times.snapshot().get("embed_s")
    with pytest.raises(InvalidInput, match="over the limit"):
        seeded.add_many(records, batch_size=limit + 1)
    assert seeded.add_times.snapshot().get("embed_s") == embedded
    assert len(seeded.get_all(user_id="ann")) == 1


BAD_READS = [
    (ScopeRequired, lambda m: m.search("q")),
    (InvalidInput, lambda m: m.search("", user_id="ann")),
    (InvalidInput, lambda m: m.search("q", user_id="ann", top_k=0)),
    (InvalidInput, lambda m: m.search("q", user_id="ann", top_k=-3)),
    (InvalidInput, lambda m: m.search("q", user_id="ann", top_k=10**9)),
    (InvalidInput, lambda m: m.search("q" * 20_000, user_id="ann")),
    (InvalidFilter, lambda m: m.search("q", user_id="ann", filters={"a": {"regex": "x"}})),
    (InvalidFilter, lambda m: m.search("q", user_id="ann", filters={"OR": "x"})),
    (InvalidTimestamp, lambda m: m.search("q", user_id="ann", now="soon")),
    (NotFound, lambda m: m.get("00000000-0000-0000-0000-000000000000")),
    (NotFound, lambda m: m.update("00000000-0000-0000-0000-000000000000", content="x")),
    (NotFound, lambda m: m.delete("00000000-0000-0000-0000-000000000000")),
    (NotFound, lambda m: m.history("00000000-0000-0000-0000-000000000000")),
    (NotFound, lambda m: m.restore("00000000-0000-0000-0000-000000000000")),
    (InvalidInput, lambda m: m.get(None)),
    (InvalidInput, lambda m: m.consolidate(user_id="ann", threshold=2.0)),
    (InvalidInput, lambda m: m.get_all(user_id="ann", limit=0)),
]


@pytest.mark.parametrize(("error", "call"), BAD_READS)
def test_bad_reads_raise_typed_errors(seeded, error, call):
    before = seeded.stats()
    with pytest.raises(error):
        call(seeded)
    assert seeded.stats()["notes"] == before["notes"]


def test_sql_and_fts_metacharacters_are_just_text(seeded):
    for query in ["'; DROP TABLE notes; --", 'content:"x" OR 1=1', "* AND NOT ( ) ^ ~ \\", "%_%", "🙂 ∑ 𝔘"]:
        seeded.search(query, user_id="ann")
    seeded.search("q", user_id="ann", filters={"name": {"contains": "'; DROP TABLE notes; --"}})
    assert len(seeded.get_all(user_id="ann")) == 1


def test_bad_update_keeps_the_note(seeded):
    note = seeded.get_all(user_id="ann")[0]
    with pytest.raises(EmptyContent):
        seeded.update(note.id, content="")
    with pytest.raises(InvalidInput):
        seeded.update(note.id)
    assert seeded.get(note.id).content == note.content
