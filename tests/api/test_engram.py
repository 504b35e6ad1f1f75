"""The embedded API end to end: real SQLite file, real FAISS, real MiniLM."""
import time
import uuid
from datetime import timedelta

import pytest

from memory.errors import NotFound
from tests.helpers import T0, index_names

TURNS = [
    {"role": "user", "content": "I adopted a beagle puppy named Max last week."},
    {"role": "assistant", "content": "Congratulations! Beagles need plenty of exercise and a good leash."},
    {"role": "user", "content": "My sister Ines lives in Lisbon and I visit her every summer."},
    {"role": "user", "content": "Max had his rabies vaccine at the Oakwood vet clinic today."},
    {"role": "user", "content": "I'm training for the Berlin marathon in September."},
]


@pytest.fixture()
def filled(mem):
    notes = []
    for i, turn in enumerate(TURNS):
        notes += mem.add([turn], user_id="ann", session_id=f"s{i}", timestamp=T0 + timedelta(days=7 * i))
    mem.add("Bob keeps a beagle too, called Rex.", user_id="bob", timestamp=T0)
    return notes


def test_add_messages_makes_one_note_per_turn(mem):
    notes = mem.add(TURNS[:2], user_id="ann", timestamp=T0)
    assert [n.metadata["role"] for n in notes] == ["user", "assistant"]
    assert all(n.scope.user_id == "ann" and n.event_time == T0 for n in notes)
    assert notes[0].keywords and notes[0].tags and notes[0].context
    assert notes[0].created_at == T0  # the frozen clock


def test_search_finds_and_explains(filled, mem):
    hits = mem.search("what is the name of my dog?", user_id="ann", now=T0 + timedelta(days=40))
    assert "Max" in hits[0].content
    top = hits[0]
    assert top.id and top.metadata["role"] == "user" and top.event_time >= T0
    assert 0 < top.retention <= 1 and top.score > 0 and 0 < top.relevance <= 1
    assert top.dense is not None and top.dense > 0.2
    assert all(h.note.scope.user_id == "ann" for h in hits)  # never bob's beagle


def test_search_reinforces_recalled_notes(filled, mem):
    now = T0 + timedelta(days=40)
    hit = mem.search("Berlin marathon training", user_id="ann", now=now, top_k=1)[0]
    note = mem.store.get(hit.id)
    assert note.recall_count == 1 and note.last_recalled_at == now and note.strength > 30.0
    assert mem.retention(note, now) == pytest.approx(1.0)
    assert mem.retention(note, now + timedelta(days=10)) > mem.retention(filled[0], now + timedelta(days=10))


def test_bm25_only_hits_are_kept(filled, mem):
    # "Oakwood" means nothing to MiniLM; BM25 must carry it (mem0 drops BM25-only hits).
    hits = mem.search("Oakwood", user_id="ann", top_k=3)
    assert "Oakwood" in hits[0].content and hits[0].bm25 and hits[0].bm25 > 0


def test_filters_and_time_ranges(filled, mem):
    hits = mem.search("dog", user_id="ann", filters={"role": "assistant"})
    assert hits and all(h.metadata["role"] == "assistant" for h in hits)
    window = {"event_time": {"gte": (T0 + timedelta(days=20)).isoformat()}}
    assert all(h.event_time >= T0 + timedelta(days=20) for h in mem.search("dog", user_id="ann", filters=window))
    assert mem.search("dog", user_id="ann", filters={"role": "nobody"}) == []


def test_session_scope(filled, mem):
    hits = mem.search("dog", user_id="ann", session_id="s3")
    assert [h.note.scope.session_id for h in hits] == ["s3"]


def test_links_connect_related_notes_by_id(filled, mem):
    vaccine = filled[3]
    linked = {lk.target_id for lk in mem.get(vaccine.id).links if lk.source_id == vaccine.id}
    assert filled[0].id in linked  # "Max had his rabies vaccine" → "adopted a beagle puppy named Max"
    for link in mem.links(vaccine.id):
        assert mem.store.get(link.target_id).scope.user_id == "ann"


def test_add_many_runs_with_the_heap_frozen_and_thaws_it(mem):
    """A bulk ingest keeps the process's objects out of full collections while it runs (api/heap.py)."""
    import gc

    frozen = []
    mem.add_many([{"content": f"Ann watered plant number {i}.", "user_id": "ann"} for i in range(5)],
                 batch_size=2, progress=lambda _n: frozen.append(gc.get_freeze_count()))
    assert len(frozen) == 3 and min(frozen) > 0
    assert gc.get_freeze_count() == 0


def test_add_many_freezes_each_stored_batch(mem):
    """What a batch leaves behind (its notes, the index's entries) is frozen once the batch is
    stored, so that full collections during the rest of the ingest do not walk it again."""
    import gc

    from memory.types import Note

    def first_batch_collectable() -> bool:
        return any(isinstance(o, Note) and o.content.endswith(" 0.") for o in gc.get_objects())

    seen = []
    notes = mem.add_many([{"content": f"Ann repotted fern number {i}.", "user_id": "ann"} for i in range(6)],
                         batch_size=2, progress=lambda _n: seen.append(first_batch_collectable()))
    assert seen == [False, False, False]
    assert gc.get_freeze_count() == 0 and first_batch_collectable()  # thawed after the ingest
    assert notes[0].content.endswith(" 0.")


def test_add_many_pipelined_batches_link_like_single_adds(mem):
    """add_many embeds the next batch while it stores this one: notes come back in record order,
    and a note links to notes of earlier batches exactly as one-by-one adds would link them."""
    records = [{"content": t["content"], "user_id": "ann", "timestamp": T0 + timedelta(days=i)} for i, t in enumerate(TURNS)]
    notes = mem.add_many(records, batch_size=2)  # three batches: 2 + 2 + 1
    assert [n.content for n in notes] == [t["content"] for t in TURNS]
    assert all(mem.get(n.id).content == n.content for n in notes)
    linked = {lk.target_id for lk in mem.get(notes[3].id).links if lk.source_id == notes[3].id}
    assert notes[0].id in linked  # vaccine (batch 2) → beagle puppy named Max (batch 1)
    hits = mem.search("what is the name of my dog?", user_id="ann", top_k=3)
    assert "Max" in hits[0].content


def test_note_ids_are_uuid7_in_creation_order(mem):
    """Stored ids follow wall time (what keeps the id-keyed indexes append-only), whatever the
    frozen clock says; later adds sort after earlier ones."""
    first = mem.add_many([{"content": f"Ann planted tulip bulb number {i}.", "user_id": "ann"} for i in range(3)])
    time.sleep(0.002)
    later = mem.add("Ann watered the tulips.", user_id="ann")[0]
    assert {uuid.UUID(n.id).version for n in [*first, later]} == {7}
    assert all(n.id < later.id for n in first)
    assert sorted(n.id for n in mem.get_all(user_id="ann")) == sorted(n.id for n in [*first, later])


def test_evolution_updates_neighbour_tags_and_is_audited(mem):
    first = mem.add("Pepper the dog has been limping on her paw since the walk.", user_id="u", timestamp=T0)[0]
    mem.add("The vet said Pepper the dog has a sprained paw from the walk.", user_id="u", timestamp=T0)
    evolved = [h for h in mem.history(first.id) if h.action == "evolve"]
    assert evolved, "the close neighbour should have evolved"
    assert set(evolved[0].new["tags"]) >= set(evolved[0].old["tags"])
    assert mem.store.get(first.id).content == first.content  # content never rewritten


def test_a_neighbour_evolved_in_its_own_batch_is_audited_from_its_drafted_values(mem):
    """Notes of one batch link to each other; when a later one evolves an earlier one, history
    shows the add with the drafted keywords and tags, then the evolve from them to the new ones
    (not an evolve whose old and new values are the same)."""
    first, second = mem.add_many([
        {"content": "Pepper the dog has been limping on her paw since the walk.", "user_id": "u", "timestamp": T0},
        {"content": "The vet said Pepper the dog has a sprained paw from the walk.", "user_id": "u", "timestamp": T0},
    ])
    added, *evolved = mem.history(first.id)
    assert added.action == "add" and [h.action for h in evolved] == ["evolve"]
    change = evolved[0]
    assert change.new["cause"] == second.id
    assert (change.old["keywords"], change.old["tags"]) == (added.new["keywords"], added.new["tags"])
    assert (change.old["keywords"], change.old["tags"]) != (change.new["keywords"], change.new["tags"])
    stored = mem.get(first.id)
    assert (stored.keywords, stored.tags) == (change.new["keywords"], change.new["tags"]) == (first.keywords, first.tags)


def test_update_reembeds_and_audits(filled, mem):
    note = filled[2]
    mem.update(note.id, content="My sister Ines moved from Lisbon to Porto last month.")
    hits = mem.search("Porto", user_id="ann", top_k=1)
    assert hits[0].id == note.id
    assert [h.action for h in mem.history(note.id)][-1] == "update"
    assert mem.history(note.id)[-1].old["content"].startswith("My sister Ines lives in Lisbon")


def test_delete_removes_from_search_keeps_history(filled, mem):
    note = filled[4]
    mem.delete(note.id)
    assert all(h.id != note.id for h in mem.search("marathon", user_id="ann"))
    with pytest.raises(NotFound):
        mem.get(note.id)
    assert mem.history(note.id)[-1].action == "delete"


def test_consolidate_archives_faded_and_restore_brings_back(filled, mem):
    later = T0 + timedelta(days=400)
    archived = mem.consolidate(user_id="ann", now=later)
    assert set(archived) == {n.id for n in filled}
    assert mem.search("marathon", user_id="ann", now=later) == []
    again = mem.search("marathon", user_id="ann", now=later, include_archived=True)
    assert again and again[0].note.archived
    assert mem.restore(again[0].id) == [again[0].id]
    assert mem.search("marathon", user_id="ann", now=later)[0].id == again[0].id
    assert mem.stats()["archived"] == len(filled) - 1
    assert mem.get_all(user_id="bob")  # other scopes untouched


def test_recalled_notes_survive_consolidation(filled, mem):
    day = T0 + timedelta(days=60)
    kept = mem.search("Berlin marathon", user_id="ann", now=day, top_k=1)[0]
    for week in range(1, 8):  # recalled every week: strength keeps growing
        mem.search("Berlin marathon", user_id="ann", now=day + timedelta(days=7 * week), top_k=1)
    archived = mem.consolidate(user_id="ann", now=day + timedelta(days=160))
    assert kept.id not in archived and len(archived) == len(filled) - 1


def test_get_all_paginates_in_event_order(filled, mem):
    first = mem.get_all(user_id="ann", limit=2)
    rest = mem.get_all(user_id="ann", limit=10, offset=2)
    assert [n.id for n in first + rest] == [n.id for n in filled]


def test_now_parameter_and_clock(filled, mem, clock):
    clock.advance(days=1000)
    faded = mem.search("beagle puppy", user_id="ann", top_k=1)[0]
    fresh = mem.search("beagle puppy", user_id="ann", top_k=1, now=T0 + timedelta(days=1))[0]
    assert faded.retention < 1e-6 < fresh.retention


def test_an_add_still_lands_when_another_process_deleted_a_note_it_would_link_to(mem, database_url, embedder,
                                                                               clock, tmp_path):
    """Another writer deleted a note that this instance's index still holds: the new note's link to
    it is dropped, instead of the foreign key failing the whole add (as it did, until the index
    caught up with the delete)."""
    from api.engram import Engram

    moved = mem.add("I moved to Lisbon in March and love the tram rides", user_id="ann")[0]
    other = Engram(database_url=database_url, index_dir=tmp_path / "other.index", embedder=embedder, clock=clock,
                   workers=0)
    try:
        other.delete(moved.id)
    finally:
        other.close()
    [added] = mem.add("Since moving to Lisbon in March I ride the tram every day", user_id="ann")
    assert added.links == [] and mem.links(added.id) == []
    assert mem.get(added.id).content.startswith("Since moving")


DEFERRED_INDEXES = {"ix_links_target_id", "ix_history_note_id"}


def test_large_add_many_builds_two_indexes_once_at_its_end(mem, backend):
    """On SQLite an add_many of at least ``bulk_index_min_notes`` notes runs without the links'
    target index and history's note index and builds them after its last batch; PostgreSQL keeps
    them. Either way every link is found from both of its notes, and evolved neighbours' history."""
    from dataclasses import replace

    mem.config = replace(mem.config, memory=replace(mem.config.memory, bulk_index_min_notes=4))
    during = []

    def indexes() -> set[str]:
        return index_names(mem.store.engine, "links", "history")

    records = [{"content": t["content"], "user_id": "ann", "timestamp": T0 + timedelta(days=i)} for i, t in enumerate(TURNS)]
    records += [{"content": "Pepper the dog has been limping on her paw since the walk.", "user_id": "ann"}]
    records += [{"content": f"Ann walked Max the beagle to the park on day {i}.", "user_id": "ann"} for i in range(4)]
    records += [{"content": "The vet said Pepper the dog has a sprained paw from the walk.", "user_id": "ann"}]
    notes = mem.add_many(records, batch_size=4, progress=lambda _n: during.append(indexes()))
    assert len(during) == 3
    if backend == "sqlite":
        assert all(not DEFERRED_INDEXES & names for names in during)
    else:
        assert all(DEFERRED_INDEXES <= names for names in during)
    assert DEFERRED_INDEXES <= indexes()
    outgoing = {(lk.source_id, lk.target_id, lk.kind) for n in notes for lk in mem.links(n.id) if lk.source_id == n.id}
    incoming = {(lk.source_id, lk.target_id, lk.kind) for n in notes for lk in mem.links(n.id) if lk.target_id == n.id}
    assert len(outgoing) >= 5 and incoming == outgoing
    pepper = notes[len(TURNS)]  # evolved by the vet's note, two batches later
    assert [h.action for h in mem.history(pepper.id)] == ["add", "evolve"]
