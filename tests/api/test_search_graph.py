"""Engram.search with the knowledge graph: facts and notes in one list, the current fact and its
note above the superseded ones, ``as_of`` for the past (real SQLite, MiniLM, rule extractor)."""
import pytest

from api.config import EngramConfig
from api.engram import Engram
from api.graph_search import FactHit, GraphSearchConfig
from retrieval.ranking import Hit, RankingConfig

U = {"user_id": "u1"}
CHAT = [
    ("I live in Berlin and I love the bakeries around Kreuzberg.", "2022-03-01T10:00:00Z"),
    ("Work has been busy, the quarterly review went fine.", "2022-08-01T10:00:00Z"),
    ("Big news: we moved to Paris last June.", "2024-02-10T10:00:00Z"),
    ("I started playing tennis on Sundays with Marco.", "2024-03-01T10:00:00Z"),
]


def _open(path, embedder, clock, **cfg):
    return Engram(path, embedder=embedder, clock=clock, workers=0, config=EngramConfig(**cfg))


@pytest.fixture()
def mem(tmp_path, embedder, clock):
    m = _open(tmp_path / "engram.db", embedder, clock)
    notes = [m.add(text, timestamp=when, **U)[0] for text, when in CHAT]
    assert m.wait_for_jobs(timeout=60)
    m.notes = notes
    yield m
    m.close()


def test_one_list_with_the_current_fact_and_its_note_above_the_old_ones(mem):
    found = mem.search("Where do I live now?", top_k=5, **U)
    kinds = [h.kind for h in found]
    assert "fact" in kinds and "note" in kinds and len(found) <= 5
    fact = next(h for h in found if isinstance(h, FactHit))
    assert "Paris" in fact.content and "previously Berlin" in fact.content
    assert fact.note_ids == [mem.notes[2].id] and fact.as_dict()["kind"] == "fact"
    assert (fact.retention, fact.bm25, fact.dense) == (None, None, fact.similarity)  # prints like a note hit
    notes = [h.id for h in found if isinstance(h, Hit)]
    assert notes.index(mem.notes[2].id) < notes.index(mem.notes[0].id)
    paris = next(h for h in found if isinstance(h, Hit) and h.id == mem.notes[2].id)
    assert paris.graph_rank == 1 and paris.as_dict()["kind"] == "note"


def test_include_facts_false_returns_notes_only(mem):
    only_notes = mem.search("Where do I live now?", include_facts=False, **U)
    assert only_notes and all(isinstance(h, Hit) for h in only_notes)
    assert only_notes[0].id == mem.notes[2].id  # the graph still ranks the note behind the current fact


def test_as_of_gives_the_fact_that_held_and_only_notes_told_by_then(mem):
    found = mem.search("Where did I live?", as_of="2023-01-01T00:00:00Z", **U)
    facts = [h for h in found if isinstance(h, FactHit)]
    assert facts and "Berlin" in facts[0].content and not any("Paris" in f.content for f in facts)
    assert mem.notes[2].id not in {h.id for h in found}  # told in 2024: not known as of 2023


def test_only_returned_notes_are_reinforced(mem):
    found = mem.search("Where do I live now?", top_k=2, **U)
    returned = {h.id for h in found if isinstance(h, Hit)}
    for note in mem.notes:
        assert (mem.store.get(note.id).recall_count == 1) == (note.id in returned)


def test_graph_search_can_be_turned_off(tmp_path, embedder, clock):
    m = _open(tmp_path / "off.db", embedder, clock, graph_search=GraphSearchConfig(enabled=False))
    for text, when in CHAT:
        m.add(text, timestamp=when, **U)
    m.wait_for_jobs(timeout=60)
    found = m.search("Where do I live now?", **U)
    assert found and all(isinstance(h, Hit) and h.graph_rank is None for h in found)
    m.close()


class _Counting:
    """The real embedder, recording the size of each batch."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []
        self.dim, self.model_id = inner.dim, inner.model_id

    def embed(self, texts):
        self.batches.append(len(texts))
        return self.inner.embed(texts)


def test_a_scope_without_facts_embeds_only_the_query(tmp_path, embedder, clock):
    counting = _Counting(embedder)
    m = Engram(tmp_path / "nofacts.db", embedder=counting, clock=clock, workers=0)
    m.add(CHAT[0][0], timestamp=CHAT[0][1], **U)  # its graph job stays queued: no facts yet
    counting.batches.clear()
    m.search("Where do I live now?", **U)
    assert counting.batches == [1]
    m.wait_for_jobs(timeout=60)
    counting.batches.clear()
    m.search("Where do I live now?", **U)
    assert counting.batches == [2]  # the query and its user-perspective form, one batch
    m.close()


COINS = [
    ("How many vintage coins do I have? I counted my vintage coins today: I have 37 vintage coins.", "2023-05-01T10:00:00Z"),
    ("Good news from the flea market, I have 38 vintage coins after Sunday.", "2023-06-01T10:00:00Z"),
    ("I watched a documentary about the Roman empire last night.", "2023-06-02T10:00:00Z"),
]
# Relevance alone: the graph's note list, retention and recency off, so only the supersession
# link can put the newer count first (the older note repeats the question word for word).
RELEVANCE_ONLY = {"w_graph": 0.0, "w_retention": 0.0, "w_recency": 0.0}


@pytest.mark.parametrize("current_first", [True, False])
def test_the_note_with_the_current_count_ranks_above_the_one_it_supersedes(tmp_path, embedder, clock, current_first):
    m = _open(tmp_path / "coins.db", embedder, clock, ranking=RankingConfig(current_first=current_first, **RELEVANCE_ONLY))
    old, new, _ = (m.add(text, timestamp=when, **U)[0].id for text, when in COINS)
    assert m.wait_for_jobs(timeout=60)
    assert m.store.supersessions([old]) == [(new, old)]  # the graph saw 38 replace 37
    found = [h.id for h in m.search("How many vintage coins do I have?", include_facts=False, top_k=3, **U)]
    assert found[:2] == ([new, old] if current_first else [old, new])
    # As of a time between the two notes, only the older count was told.
    past = [h.id for h in m.search("How many vintage coins do I have?", include_facts=False, as_of="2023-05-15T00:00:00Z", **U)]
    assert past == [old]
    m.close()


@pytest.mark.parametrize("min_note_score", [0.0, 0.5])
def test_only_facts_that_match_well_lend_their_notes_to_the_ranking(tmp_path, embedder, clock, min_note_score):
    m = _open(tmp_path / "weak.db", embedder, clock, graph_search=GraphSearchConfig(min_note_score=min_note_score))
    for text, when in CHAT:
        m.add(text, timestamp=when, **U)
    assert m.wait_for_jobs(timeout=60)
    weak = m.search("What sports do I play?", include_facts=False, **U)
    ranked_by_graph = [h.content for h in weak if h.graph_rank is not None]
    # The best fact for this question is where the user lives, a poor match (cosine < 0.5): its
    # note joins the fusion (and ranks second) only when the threshold is off.
    assert ranked_by_graph == (["Big news: we moved to Paris last June."] if min_note_score == 0.0 else [])
    assert "tennis" in weak[0].content
    strong = m.search("Where do I live now?", include_facts=False, **U)
    assert strong[0].graph_rank == 1
    m.close()
