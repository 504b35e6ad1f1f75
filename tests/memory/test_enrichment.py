"""Validation of LLM enrichment answers (pure logic; the real model is tested in tests/api)."""
import jsonschema
import pytest

import itertools
import random

from memory.enrichment import (
    EnrichmentInvalid,
    enrichment_messages,
    enrichment_schema,
    groundable,
    note_grounding,
    parse_enrichment,
)
from memory.types import Note, Scope
from tests.helpers import T0


def _note(nid, content, tags=("role:user", "home"), context="user on 2026-01-01: about paris"):
    return Note(nid, Scope("u"), content, ["paris"], list(tags), context, {}, T0, T0, None, 0, 10.0, 0.5)


OLD = _note("id-old", "I live in Paris.")
TEXT = "We moved to Lisbon: a new flat, and life events galore."
LABELS = {"N1": OLD.id}
GOOD = {"keywords": ["Lisbon", "moved", " lisbon ", "new flat", "Paris"], "tags": ["Home", "Travel", "life events"],
        "context": "The user moved\nto Lisbon.",
        "neighbours": [{"note": "N1", "link": True, "kind": "contradicts", "new_context": "Where the user lived before Lisbon",
                        "new_tags": ["home", "past"]}]}


def test_schema_names_only_the_neighbours_shown():
    schema = enrichment_schema(["N1", "N2"])
    items = schema["properties"]["neighbours"]["prefixItems"]
    assert [i["properties"]["note"]["enum"] for i in items] == [["N1"], ["N2"]]
    jsonschema.validate(GOOD, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOOD, "keywords": ["a1", "b2"]}, schema)  # fewer than 3
    assert "neighbours" not in enrichment_schema([])["properties"]


def test_a_good_answer_is_cleaned_and_mapped_to_note_ids():
    e = parse_enrichment(GOOD, TEXT, LABELS, {OLD.id: OLD})
    assert e.keywords == ["lisbon", "moved", "new flat"]  # trimmed, de-duplicated, grounded (no "paris")
    assert e.tags == ["home", "travel", "life-events"] and e.context == "The user moved to Lisbon."
    (d,) = e.neighbours
    assert (d.note_id, d.link, d.kind) == ("id-old", True, "contradicts")
    assert d.tags == ["role:user", "home", "past"]  # new tags added; Engram's own and the old ones stay
    assert d.context == "Where the user lived before Lisbon"


@pytest.mark.parametrize("bad", [
    {**GOOD, "keywords": ["lisbon", "Lisbon", " LISBON"]},  # three spellings of one keyword
    {**GOOD, "keywords": ["piano lessons", "daughter", "tuesdays"]},  # copied from the prompt's example
    {**GOOD, "tags": ["a", "b", "c"]},  # too short to be tags
    {**GOOD, "tags": ["type", "array", "items", "home"]},  # the schema's words echoed
    {**GOOD, "context": "   "},
    {**GOOD, "context": "The piano lessons of the daughter."},  # about something the note does not say
    {**GOOD, "neighbours": [{**GOOD["neighbours"][0], "note": "N7"}]},
    {**GOOD, "neighbours": GOOD["neighbours"] * 2},
    {**GOOD, "neighbours": [{**GOOD["neighbours"][0], "kind": "rewrites"}]},
    ["not", "an", "object"],
])
def test_answers_that_break_the_rules_are_rejected(bad):
    with pytest.raises(EnrichmentInvalid):
        parse_enrichment(bad, TEXT, LABELS, {OLD.id: OLD})


def test_unchanged_neighbour_fields_and_unlinked_neighbours_are_no_change():
    same = {**GOOD, "neighbours": [{"note": "N1", "link": False, "kind": "contradicts", "new_context": OLD.context,
                                    "new_tags": ["home"]}]}
    (d,) = parse_enrichment(same, TEXT, LABELS, {OLD.id: OLD}).neighbours
    assert (d.link, d.kind, d.context, d.tags) == (False, "related", None, None)


def test_messages_show_neighbours_under_labels_not_ids():
    new = _note("id-new", "We moved to Lisbon.")
    text = enrichment_messages(new, [(OLD, 0.7)], LABELS)[-1]["content"]
    assert "NEIGHBOUR N1" in text and "I live in Paris." in text and "id-old" not in text


def test_a_context_copied_from_a_neighbour_is_rejected():
    hunting = _note("id-old", "Looking at flats in Lisbon.", context="The user looks for a flat in Lisbon.")
    with pytest.raises(EnrichmentInvalid, match="copies"):
        parse_enrichment({**GOOD, "context": hunting.context}, TEXT, LABELS, {hunting.id: hunting})


def _grounded(text, labels=("N1",)):
    return enrichment_schema(list(labels), None, note_grounding(text))


def test_a_grounded_schema_offers_only_the_note_s_words_and_three_distinct_of_each():
    schema = _grounded(TEXT)
    keywords, tags = schema["properties"]["keywords"], schema["properties"]["tags"]
    groups = [set(item["enum"]) for item in keywords["prefixItems"]]
    assert len(groups) == 3 and not any(a & b for a, b in itertools.combinations(groups, 2))
    facets = [set(item["enum"]) for item in tags["prefixItems"]]
    assert len(facets) == 3 and not any(a & b for a, b in itertools.combinations(facets, 2))
    assert {"lisbon", "moved", "flat"} <= set.union(*groups) and "piano" not in str(schema)
    assert "lisbon" in facets[2]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOOD, "keywords": ["piano lessons", "daughter", "tuesdays"]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOOD, "context": "The user takes piano lessons."}, schema)  # words not in the note
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOOD, "context": "The user Lisbon Lisbon moved."}, schema)  # not a run of the note


def test_every_answer_the_grounded_schema_admits_passes_validation():
    schema = _grounded(TEXT)
    props = schema["properties"]
    rng = random.Random(7)
    contexts = ["The user moved to Lisbon.", "The user moved to Lisbon a new flat.",
                "The assistant life events galore."]
    for _ in range(200):
        answer = {
            "keywords": [rng.choice(i["enum"]) for i in props["keywords"]["prefixItems"]],
            "tags": [rng.choice(i["enum"]) for i in props["tags"]["prefixItems"]],
            "context": rng.choice(contexts),
            "neighbours": [{"note": "N1", "link": rng.random() < 0.5, "kind": "related", "new_context": None,
                            "new_tags": None}][: rng.randint(0, 1)],
        }
        jsonschema.validate(answer, schema)
        e = parse_enrichment(answer, TEXT, LABELS, {OLD.id: OLD})
        assert len(e.keywords) >= 3 and len(e.tags) >= 3


def test_each_neighbour_can_be_decided_once_only():
    schema = _grounded(TEXT, ("N1", "N2"))
    decision = {"link": False, "kind": "related", "new_context": None, "new_tags": None}
    jsonschema.validate({**GOOD, "keywords": ["flat", "lisbon", "moved"], "tags": ["home", "change", "lisbon"],
                         "context": "The user moved to Lisbon.", "neighbours": [{**decision, "note": "N1"}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOOD, "neighbours": [{**decision, "note": "N1"}, {**decision, "note": "N1"}]}, schema)


def test_a_note_with_too_few_words_is_not_groundable():
    assert not groundable(note_grounding("ok, thanks!"))
    assert groundable(note_grounding("Lisbon flat river"))


def test_messages_carry_no_worked_example():
    new = _note("id-new", "We moved to Lisbon.")
    assert [m["role"] for m in enrichment_messages(new, [], {})] == ["system", "user"]
