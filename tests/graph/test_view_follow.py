"""A graph written by another process (the ``engram worker``): a follower's networkx view picks up
its ingests, contradictions, retractions and merges from SQL, and a non-follower's does not."""
from graph.extract_rules import RuleExtractor
from graph.temporal_graph import TemporalGraph
from memory.types import Scope

U = {"user_id": "u1"}
SCOPE = Scope(user_id="u1")


def _reader(sql_engine, embedder, clock, follow_s):
    return TemporalGraph(sql_engine, embedder, RuleExtractor(), clock, follow_s=follow_s)


def test_a_following_view_sees_another_writer(chat, graph, sql_engine, embedder, clock):
    follower = _reader(sql_engine, embedder, clock, follow_s=0.0)
    frozen = _reader(sql_engine, embedder, clock, follow_s=None)
    chat.say("I live in Berlin and my brother Tom works at Siemens.", "2022-03-01T10:00:00Z")
    assert follower.view.snapshot() == graph.view.snapshot() != frozen.view.snapshot()
    chat.say("We moved to Paris last June.", "2024-02-10T10:00:00Z")  # closes "lives in Berlin"
    assert follower.view.snapshot() == graph.view.snapshot()
    graph.retract_note("n1", SCOPE)  # Berlin holds again
    assert follower.view.snapshot() == graph.view.snapshot()
    chat.say("Thomas moved to Munich.", "2024-03-05T10:00:00Z")
    graph.merge("Tom", "Thomas", reason="same brother", **U)
    assert follower.view.snapshot() == graph.view.snapshot() == graph.rebuild_view().snapshot()
    assert not follower.sync_view()  # nothing new: no rebuild


def test_the_check_is_rate_limited(chat, graph, sql_engine, embedder, clock):
    follower = _reader(sql_engine, embedder, clock, follow_s=3600.0)
    chat.say("I live in Berlin.", "2022-03-01T10:00:00Z")
    assert follower.view.snapshot() != graph.view.snapshot()  # not looked yet
    assert follower.sync_view() and follower.view.snapshot() == graph.view.snapshot()
