"""Withdrawing a note's episodes (note deleted or rewritten): facts are closed, never deleted, and
the facts they had superseded take their place again."""
from memory.types import Scope


def _current(graph):
    return [str(f) for f in graph.facts(entity="u1", user_id="u1")]


def test_withdrawing_the_middle_move_hands_its_end_to_the_fact_before(chat, graph):
    chat.say("I moved to Paris in 2021.", "2023-01-10T10:00:00Z")
    chat.say("We moved to Lisbon last June.", "2024-02-10T10:00:00Z")
    chat.say("I moved to Rome two weeks ago.", "2025-09-15T10:00:00Z")
    changed = graph.retract_note("n1", Scope(user_id="u1"))
    names = graph.store.names([f.object_id for f in changed])
    assert sorted(names[f.object_id] for f in changed) == ["Lisbon", "Paris"]
    assert len(_current(graph)) == 1 and "Rome" in _current(graph)[0] and "previously Paris" in _current(graph)[0]
    history = {f.object_name: f for f in graph.history("u1", user_id="u1")}
    assert history["Paris"].invalid_at == history["Rome"].valid_at  # Paris now ends where Rome starts
    lisbon = history["Lisbon"]
    assert lisbon.invalid_at == lisbon.valid_at and lisbon.expired_at is not None  # kept, but never held
    assert graph.facts(entity="u1", user_id="u1", as_of="2024-01-01")[0].object_name == "Paris"


def test_withdrawing_the_latest_move_reopens_the_one_before(chat, graph):
    chat.say("I moved to Paris in 2021.", "2023-01-10T10:00:00Z")
    chat.say("We moved to Lisbon last June.", "2024-02-10T10:00:00Z")
    graph.retract_note("n1", Scope(user_id="u1", session_id="s1"))
    (paris,) = graph.facts(entity="u1", user_id="u1")
    assert paris.object_name == "Paris" and paris.invalid_at is None and paris.expired_at is None
    assert graph.rebuild_view().snapshot() == graph.view.snapshot()  # the networkx view followed


def test_a_fact_restated_elsewhere_survives_withdrawal(chat, graph):
    chat.say("I work at Airbus.", "2024-01-10T10:00:00Z")
    chat.say("I work at Airbus, still.", "2024-03-10T10:00:00Z")
    assert graph.retract_note("n0", Scope(user_id="u1")) != []
    (fact,) = graph.facts(entity="u1", user_id="u1")
    assert "Airbus" in str(fact) and fact.is_current and len(fact.episode_ids) == 1
    assert graph.retract_note("unknown-note", Scope(user_id="u1")) == []
