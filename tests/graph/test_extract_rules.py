"""The deterministic extractor on chat sentences: which facts come out, with which dates."""
from datetime import UTC, datetime

import pytest

from graph.extract_rules import RuleExtractor
from graph.types import USER

REF = datetime(2026, 1, 14, 15, 30, tzinfo=UTC)
TODAY = datetime(2026, 1, 14, 15, 30, tzinfo=UTC)


def triples(text):
    return {(f.subject, f.predicate, f.object) for f in RuleExtractor().extract(text, REF).facts}


@pytest.mark.parametrize(("text", "expected"), [
    ("I live in Berlin.", {(USER, "lives_in", "Berlin")}),
    ("I'm currently living in New York City.", {(USER, "lives_in", "New York City")}),
    ("We moved to Paris last June.", {(USER, "lives_in", "Paris")}),
    ("I work at Google.", {(USER, "works_at", "Google")}),
    ("I got a new job at Microsoft two weeks ago.", {(USER, "works_at", "Microsoft")}),
    ("I'm a nurse at St Mary Hospital.", {(USER, "works_at", "St Mary Hospital"), (USER, "job_title", "nurse")}),
    ("I work as a data scientist.", {(USER, "job_title", "data scientist")}),
    ("I have a dog named Rex.", {(USER, "has_pet", "Rex")}),
    ("My cat's name is Luna.", {(USER, "has_pet", "Luna")}),
    ("I love hiking.", {(USER, "likes", "hiking")}),
    ("I hate traffic.", {(USER, "dislikes", "traffic")}),
    ("I am vegetarian now.", {(USER, "diet", "vegetarian")}),
    ("My sister Emma lives in Oslo.", {(USER, "sister", "Emma"), ("Emma", "lives_in", "Oslo")}),
    ("Tom is my brother.", {(USER, "brother", "Tom")}),
    ("My husband Mark works at Siemens.", {(USER, "partner", "Mark"), ("Mark", "works_at", "Siemens")}),
    ("Alice moved to Rome in 2021.", {("Alice", "lives_in", "Rome")}),
    ("I studied at NYU.", {(USER, "studied_at", "NYU")}),
    ("I grew up in Porto.", {(USER, "from", "Porto")}),
    ("My favorite food is sushi.", {(USER, "favorite_food", "sushi")}),
    ("I'm 34 years old.", {(USER, "age", "34")}),
    ("I have a total of 52 vinyl records.", {(USER, "count_have_vinyl_records", "52")}),
    # an ordinal counts so far, under the same key as "I've completed 3 pottery classes"
    ("I just finished my 4th pottery class and loved it.", {(USER, "count_completed_pottery_classes", "4")}),
    ("I finished my fifth marathon last weekend.", {(USER, "count_completed_marathons", "5")}),
    ("I finished my first book of the series.", set()),
    ("I've been using my Kindle Paperwhite for 8 months now.", {(USER, "duration_using_kindle_paperwhite", "8 months")}),
    ("I've been learning Spanish for two years.", {(USER, "duration_learning_spanish", "two years")}),
    ("I live in Berlin and work at Google.", {(USER, "lives_in", "Berlin"), (USER, "works_at", "Google")}),
    ("My sister Emma lives in Oslo and works at Equinor.",
     {(USER, "sister", "Emma"), ("Emma", "lives_in", "Oslo"), ("Emma", "works_at", "Equinor")}),
    ("I'd like to ask about hotels.", set()),
    ("I like the idea of a personalized mug.", set()),
    ("Luna's food is from Petco.", set()),
    ("Write an artist statement for me.", set()),
    ("Can you recommend a restaurant in Paris?", set()),
    ("I don't live in Paris.", set()),
])
def test_statements_become_triples(text, expected):
    assert triples(text) == expected


def test_dates_set_valid_at_and_default_to_the_reference_time():
    facts = RuleExtractor().extract("We moved to Paris last June. I work at Google.", REF).facts
    by_pred = {f.predicate: f for f in facts}
    assert by_pred["lives_in"].valid_at == datetime(2025, 6, 1, tzinfo=UTC)
    assert by_pred["works_at"].valid_at == TODAY


def test_endings_and_corrections_are_marked():
    left = RuleExtractor().extract("I left Google yesterday.", REF).facts
    assert [(f.predicate, f.object, f.negated) for f in left] == [("works_at", "Google", True)]
    assert left[0].valid_at == datetime(2026, 1, 13, tzinfo=UTC)
    fixed = RuleExtractor().extract("Actually, I live in Lyon, not Paris.", REF).facts
    assert [(f.object, f.correction) for f in fixed] == [("Lyon", True)]


def test_entities_carry_types_and_roles():
    ext = RuleExtractor().extract("My colleague Emma is vegan. I studied at NYU with her.", REF)
    ents = {e.name: e for e in ext.entities}
    assert (ents["Emma"].type, ents["Emma"].role) == ("person", "colleague")
    assert ents["NYU"].type == "organization"
    assert ("Emma", "diet", "vegan") in {(f.subject, f.predicate, f.object) for f in ext.facts}


def test_pronoun_subject_goes_to_the_last_person():
    ext = RuleExtractor().extract("My sister Emma lives in Oslo. She works at Spotify.", REF)
    assert ("Emma", "works_at", "Spotify") in {(f.subject, f.predicate, f.object) for f in ext.facts}


def test_capitalised_names_are_mentions_but_sentence_openers_are_not():
    ext = RuleExtractor().extract("Yesterday New York University had a gala. The Louvre was closed on Monday.", REF)
    names = {e.name for e in ext.entities}
    assert {"New York University", "Louvre"} <= names
    assert not names & {"Yesterday", "The", "Monday"}


def test_a_correction_names_the_wrong_value():
    fixed = RuleExtractor().extract("Actually, I live in Lyon, not Paris.", REF).facts
    assert [(f.object, f.corrects) for f in fixed] == [("Lyon", "Paris")]
    plain = RuleExtractor().extract("Sorry, I meant I work at Apple.", REF).facts
    assert [(f.object, f.correction, f.corrects) for f in plain] == [("Apple", True, None)]


def test_perfect_tense_is_current_but_simple_past_is_not():
    assert triples("I've lived in Paris since 2021.") == {(USER, "lives_in", "Paris")}
    assert triples("I lived in Rome as a kid.") == set()


def test_long_texts_stay_linear():
    """Ten times the text costs about ten times the time, not a hundred (the first text took 13 s
    before names were bounded). A ratio within one run, best of three, so a busy machine does not
    fail it the way an absolute limit did."""
    import time

    def best(text: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            RuleExtractor().extract(text, REF)
            times.append(time.perf_counter() - start)
        return min(times)

    for unit, n in (("Alpha Beta ", 2000), ("My sister Emma lives in Oslo and likes the New York University of Arts ", 500)):
        assert best(unit * n) / best(unit * (n // 10)) < 35
