"""Graph signals for search on a real TemporalGraph (SQLite file, MiniLM): facts by cosine and by
walking from named entities, and the notes they came from."""
from datetime import timedelta

import pytest

from api.graph_search import GraphSearchConfig, rank_graph
from graph.extract_rules import RuleExtractor
from graph.queries import user_perspective
from graph.temporal_graph import TemporalGraph
from memory.database import open_engine, sqlite_url
from memory.timeutil import to_utc
from memory.types import Scope

SCOPE = Scope(user_id="u1")


@pytest.fixture()
def graph(tmp_path, embedder, clock):
    engine = open_engine(sqlite_url(tmp_path / "g.db"), durable=False)
    g = TemporalGraph(engine, embedder, RuleExtractor(), clock)
    lines = [("I live in Berlin.", "2022-03-01T10:00:00Z"), ("My sister Emma works at Siemens.", "2022-04-01T10:00:00Z"),
             ("We moved to Paris last June.", "2024-02-10T10:00:00Z"), ("I play tennis on Sundays.", "2024-03-01T10:00:00Z")]
    for i, (text, when) in enumerate(lines):
        clock.set(to_utc(when) + timedelta(minutes=1))
        g.ingest(text, f"n{i}", SCOPE, when)
    yield g
    engine.dispose()


def _rank(graph, embedder, query, as_of=None, cfg=GraphSearchConfig()):
    qvec = embedder.embed([user_perspective(query)])[0]
    return rank_graph(graph, query, qvec, SCOPE, as_of, 5, cfg)


def test_current_fact_and_its_note_come_first(graph, embedder):
    ranking = _rank(graph, embedder, "Where do I live now?")
    top = ranking.facts[0]
    assert top.fact.predicate == "lives_in" and top.fact.object_name == "Paris"
    assert "previously Berlin" in top.content and top.note_ids == ["n2"]
    assert ranking.note_ids[0] == "n2"
    assert all(f.fact.object_name != "Berlin" for f in ranking.facts if f.fact.predicate == "lives_in")
    assert top.as_dict()["kind"] == "fact" and top.as_dict()["user_id"] == "u1"


def test_as_of_returns_the_fact_that_held_then(graph, embedder):
    ranking = _rank(graph, embedder, "Where did I live?", as_of=to_utc("2023-01-01T00:00:00Z"))
    lives = [f for f in ranking.facts if f.fact.predicate == "lives_in"]
    assert [f.fact.object_name for f in lives] == ["Berlin"] and lives[0].note_ids == ["n0"]


def test_a_named_entity_pulls_its_facts_with_a_distance_bonus(graph, embedder):
    near = _rank(graph, embedder, "What about Emma?")
    emma = [f for f in near.facts if "Emma" in (f.fact.subject_name, f.fact.object_name)]
    assert emma and emma[0].distance == 0 and near.facts[0].id == emma[0].id
    far = _rank(graph, embedder, "What about Emma?", cfg=GraphSearchConfig(w_near=0.0))
    assert emma[0].score > [f for f in far.facts if f.id == emma[0].id][0].score
