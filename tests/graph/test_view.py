"""GraphView walks as pure logic: only facts holding now (or at as_of) connect entities."""
from datetime import UTC, datetime

from graph.types import Entity, Fact
from graph.view import GraphView
from memory.types import Scope

U = Scope(user_id="u1")


def y(year):
    return datetime(year, 1, 1, tzinfo=UTC)


def ent(i):
    return Entity(id=i, name=i.upper(), norm_name=i, type="entity", scope=U)


def fact(fid, s, o, valid=None, invalid=None):
    return Fact(id=fid, subject_id=s, object_id=o, predicate="p", fact=fid, scope=U, episode_ids=[],
                valid_at=valid, invalid_at=invalid, created_at=y(2026))


def view():
    # a -> b -> c now; a -> d only until 2020; d <- e always
    return GraphView.rebuild([ent(x) for x in "abcde"],
                             [fact("ab", "a", "b"), fact("bc", "b", "c"), fact("ad", "a", "d", y(2010), y(2020)),
                              fact("ed", "e", "d")])


def test_neighbours_follow_both_directions_over_current_facts():
    v = view()
    assert v.neighbours("c", 2) == {"b": 1, "a": 2}
    assert v.neighbours("a", 3) == {"b": 1, "c": 2}
    # Undated facts hold at any time, so in 2015 the closed a->d link adds d and e.
    assert v.neighbours("a", 2, as_of=y(2015)) == {"b": 1, "d": 1, "c": 2, "e": 2}
    assert v.neighbours("zzz", 2) == {}


def test_a_fact_ending_later_still_connects_now():
    v = GraphView.rebuild([ent("a"), ent("b")], [fact("ab", "a", "b", y(2020), y(2030))])
    assert v.neighbours("a", 1, now=y(2025)) == {"b": 1}
    assert v.neighbours("a", 1, now=y(2031)) == {}


def test_paths_are_shortest_and_respect_time():
    v = view()
    assert v.path("a", "c") == ["ab", "bc"]
    assert v.path("c", "a") == ["bc", "ab"]
    assert v.path("a", "e") == []
    assert v.path("a", "e", as_of=y(2015)) == ["ad", "ed"]
    assert v.path("a", "a") == []


def test_merged_entities_leave_the_view():
    v = view()
    gone = ent("d")
    gone.merged_into = "a"
    v.upsert_entity(gone)
    assert "d" not in v.g and v.neighbours("e", 1) == {}


def test_walks_do_not_pass_through_values():
    number = Entity(id="n4", name="4", norm_name="4", type="value", scope=U)
    v = GraphView.rebuild([ent("a"), ent("b"), number], [fact("a4", "a", "n4"), fact("b4", "b", "n4")])
    assert v.neighbours("a", 3) == {"n4": 1}
    assert v.path("a", "b") == []
