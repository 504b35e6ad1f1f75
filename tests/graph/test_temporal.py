"""Contradiction handling as pure functions: which interval closes, and when."""
from datetime import UTC, datetime

import pytest

from graph.temporal import Closure, NewFact, current_as_of, decide, endings, is_functional, overlaps
from graph.types import Fact
from memory.types import Scope

U = Scope(user_id="u1")


def y(year, month=1):
    return datetime(year, month, 1, tzinfo=UTC)


def fact(fid, obj, valid, invalid=None, predicate="lives_in", subject="me"):
    return Fact(id=fid, subject_id=subject, object_id=obj, predicate=predicate, fact=f"{subject} {predicate} {obj}",
                scope=U, episode_ids=[], valid_at=valid, invalid_at=invalid, created_at=y(2026))


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((y(2020), y(2022)), (y(2021), None), True),
    ((y(2020), y(2021)), (y(2021), None), False),      # half-open: touching is not overlapping
    ((None, None), (y(2021), None), True),
    ((y(2020), y(2020)), (None, None), False),         # an interval that never held overlaps nothing
    ((y(2023), None), (y(2020), y(2022)), False),
])
def test_overlaps(a, b, expected):
    assert overlaps(*a, *b) is expected
    assert overlaps(*b, *a) is expected


def test_functional_predicates():
    assert is_functional("lives_in") and is_functional("works_at") and is_functional("favorite_food")
    assert not is_functional("likes") and not is_functional("sister")


def test_newer_fact_closes_the_older_at_its_start():
    old = fact("berlin", "B", y(2020))
    d = decide(NewFact("paris", "me", "lives_in", "P", y(2023)), [old])
    assert d.close == [Closure("berlin", y(2023), "paris")]
    assert d.invalid_at is None and d.duplicate_of is None


def test_news_about_the_past_closes_the_new_fact_instead():
    current = fact("paris", "P", y(2023))
    d = decide(NewFact("berlin", "me", "lives_in", "B", y(2020)), [current])
    assert d.close == []
    assert (d.invalid_at, d.superseded_by) == (y(2023), "paris")


def test_same_statement_again_is_a_duplicate():
    current = fact("paris", "P", y(2023))
    assert decide(NewFact("x", "me", "lives_in", "P", y(2024)), [current]).duplicate_of == "paris"


def test_moving_back_after_a_closed_stay_is_a_new_fact():
    stays = [fact("p1", "P", y(2018), y(2020)), fact("b", "B", y(2020))]
    d = decide(NewFact("p2", "me", "lives_in", "P", y(2024)), stays)
    assert d.duplicate_of is None
    assert d.close == [Closure("b", y(2024), "p2")]


def test_correction_means_the_old_value_never_held():
    wrong = fact("google", "G", y(2025, 6), predicate="works_at")
    d = decide(NewFact("ms", "me", "works_at", "M", y(2025, 7), correction=True), [wrong])
    assert d.close == [Closure("google", y(2025, 6), "ms")]
    assert d.valid_at == y(2025, 6)  # the corrected value held since the wrong one was said to


def test_non_functional_predicates_accumulate():
    likes = fact("jazz", "J", y(2020), predicate="likes")
    d = decide(NewFact("rock", "me", "likes", "R", y(2021)), [likes])
    assert d.close == [] and d.duplicate_of is None


def test_candidates_from_other_subjects_or_predicates_are_ignored():
    # Graphiti #1728: only facts on the same subject and predicate may be closed.
    others = [fact("sis", "X", y(2020), subject="sister"), fact("job", "X", y(2020), predicate="works_at")]
    d = decide(NewFact("n", "me", "lives_in", "P", y(2023)), others)
    assert d.close == []


def test_an_ending_closes_only_the_matching_current_fact():
    facts = [fact("g", "G", y(2020), predicate="works_at"), fact("old", "G", y(2010), y(2012), predicate="works_at")]
    assert endings("works_at", "G", y(2025), facts) == [Closure("g", y(2025), None)]


def test_as_of_selects_the_interval_holding_then():
    facts = [fact("b", "B", y(2020), y(2023)), fact("p", "P", y(2023))]
    assert [f.id for f in current_as_of(facts, y(2021))] == ["b"]
    assert [f.id for f in current_as_of(facts, y(2023))] == ["p"]
    assert current_as_of(facts, y(2019)) == []


def test_a_correction_naming_the_wrong_value_voids_only_that_value():
    wrong = fact("paris", "P", y(2025, 6))
    d = decide(NewFact("lyon", "me", "lives_in", "L", y(2025, 7), correction=True, corrects_object_id="X"), [wrong])
    assert d.close == [Closure("paris", y(2025, 7), "lyon")]  # Paris was not the value corrected: a normal move
    d = decide(NewFact("lyon", "me", "lives_in", "L", y(2025, 7), correction=True, corrects_object_id="P"), [wrong])
    assert d.close == [Closure("paris", y(2025, 6), "lyon")]


def test_restating_with_an_earlier_start_moves_the_start_back():
    berlin, paris = fact("b", "B", y(2018), y(2023)), fact("p", "P", y(2023))
    d = decide(NewFact("n", "me", "lives_in", "P", y(2021)), [berlin, paris])
    assert (d.duplicate_of, d.starts) == ("p", y(2021))
    assert d.close == [Closure("b", y(2021), "p")]
    later = decide(NewFact("n", "me", "lives_in", "P", y(2024)), [berlin, paris])
    assert (later.duplicate_of, later.starts, later.close) == ("p", None, [])
