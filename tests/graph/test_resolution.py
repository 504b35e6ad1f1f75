"""Entity resolution stages: exact, acronym, fuzzy (guarded), embedding, LLM; roles keep people apart."""
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from graph.resolution import Candidate, acronym, is_acronym_of, low_entropy, normalise, resolve_entity
from graph.types import Entity, ExtractedEntity
from memory.types import Scope

T = datetime(2026, 1, 1, tzinfo=UTC)
U = Scope(user_id="u1")


def ent(name, type_="organization", role=None, seen=0, aliases=()):
    return Entity(id=f"id-{name}-{role}", name=name, norm_name=normalise(name), type=type_, scope=U,
                  aliases=list(aliases), attributes={"role": role} if role else {}, last_seen_at=T + timedelta(days=seen))


def test_normalise_and_acronyms():
    assert normalise("  The  Louvre! ") == "louvre"
    assert acronym("Massachusetts Institute of Technology") == "MIT"
    assert is_acronym_of("NYU", "New York University")
    assert not is_acronym_of("nyu", "New York University")  # lower case is a word, not an acronym
    assert not is_acronym_of("NY", "New York University")


@pytest.mark.parametrize(("name", "low"), [("Jon", True), ("aaaaaaa", True), ("Copenhagen", False), ("abab ab", True)])
def test_low_entropy_guard(name, low):
    assert low_entropy(normalise(name)) is low


def test_exact_match_wins_without_any_embedding():
    # Graphiti #1734: an exact name must not depend on a cosine gate.
    far = np.array([1.0, 0.0], dtype=np.float32)
    cands = [Candidate(ent("Google"), np.array([0.0, 1.0], dtype=np.float32))]
    m = resolve_entity(ExtractedEntity("google", "organization"), cands, far)
    assert (m.entity_id, m.stage) == ("id-Google-None", "exact")


def test_values_match_only_when_written_the_same():
    same = np.array([1.0, 0.0], dtype=np.float32)  # "3" and "4" embed alike
    cands = [Candidate(ent("3", "value"), same), Candidate(ent("8 months", "value"), same)]
    assert resolve_entity(ExtractedEntity("4", "value"), cands, same) is None
    assert resolve_entity(ExtractedEntity("9 months", "value"), cands, same) is None  # one edit away
    assert resolve_entity(ExtractedEntity("8 months", "value"), cands, same).entity_id == "id-8 months-None"


def test_alias_match():
    cands = [Candidate(ent("New York University", aliases=["NYU Stern"]))]
    assert resolve_entity(ExtractedEntity("NYU Stern", "organization"), cands).stage == "exact"


def test_acronym_both_ways():
    long = [Candidate(ent("New York University"))]
    assert resolve_entity(ExtractedEntity("NYU", "organization"), long).stage == "acronym"
    short = [Candidate(ent("NYU"))]
    assert resolve_entity(ExtractedEntity("New York University", "entity"), short).stage == "acronym"


def test_fuzzy_catches_typos_but_not_short_names():
    cands = [Candidate(ent("Copenhagen", "place")), Candidate(ent("Jon", "person"))]
    assert resolve_entity(ExtractedEntity("Copenhaggen", "place"), cands).stage == "fuzzy"
    assert resolve_entity(ExtractedEntity("Jan", "person"), cands) is None


def test_same_first_name_different_roles_are_not_merged():
    sister, colleague = ent("Emma", "person", "sister", seen=1), ent("Emma", "person", "colleague", seen=2)
    cands = [Candidate(sister), Candidate(colleague)]
    assert resolve_entity(ExtractedEntity("Emma", "person", "sister"), cands).entity_id == sister.id
    assert resolve_entity(ExtractedEntity("Emma", "person", "neighbour"), [Candidate(sister)]) is None
    # A bare "Emma" goes to the one seen most recently.
    assert resolve_entity(ExtractedEntity("Emma", "person"), cands).entity_id == colleague.id


def test_types_must_agree():
    assert resolve_entity(ExtractedEntity("Max", "pet"), [Candidate(ent("Max", "person"))]) is None
    assert resolve_entity(ExtractedEntity("Max", "entity"), [Candidate(ent("Max", "person"))]) is not None


def test_embedding_stage_with_real_names(embedder):
    vecs = embedder.embed(["Berlin", "Paris", "Berlin, Germany", "London", "Spotify", "Spotify AB"])
    cands = [Candidate(ent("Berlin", "place"), vecs[0]), Candidate(ent("Paris", "place"), vecs[1]),
             Candidate(ent("Spotify"), vecs[4])]
    m = resolve_entity(ExtractedEntity("Berlin, Germany", "place"), cands, vecs[2])
    assert (m.entity_id, m.stage) == ("id-Berlin-None", "embedding")
    assert resolve_entity(ExtractedEntity("Spotify AB", "organization"), cands, vecs[5]).stage == "embedding"
    assert resolve_entity(ExtractedEntity("London", "place"), cands, vecs[3]) is None  # cities stay apart
    # People never match by embedding: their names carry no meaning.
    people = [Candidate(ent("Emma", "person"), embedder.embed(["Emma"])[0])]
    assert resolve_entity(ExtractedEntity("Emily", "person"), people, embedder.embed(["Emily"])[0]) is None


class FakeJudge:
    def __init__(self, same):
        self.same, self.calls = same, 0

    def complete_json(self, messages, schema):
        self.calls += 1
        return {"same": self.same}


def test_llm_decides_near_misses_only():
    cands = [Candidate(ent("Acme Robotics Inc"))]
    yes, no = FakeJudge(True), FakeJudge(False)
    assert resolve_entity(ExtractedEntity("Acme Robotic", "organization"), cands, llm=yes).stage == "llm"
    assert resolve_entity(ExtractedEntity("Acme Robotic", "organization"), cands, llm=no) is None
    far = FakeJudge(True)
    assert resolve_entity(ExtractedEntity("Zebra Unlimited", "organization"), cands, llm=far) is None
    assert far.calls == 0
