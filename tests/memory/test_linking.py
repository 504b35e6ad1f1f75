"""Evolution plans without a database: what a batch changes in its close neighbours, keyed by id."""
from memory.config import LinkingConfig
from memory.linking import EvolutionPlan, Neighbour
from memory.types import Note, Scope
from tests.helpers import T0

CFG = LinkingConfig()


def _note(nid: str, content: str, keywords: list[str], tags: list[str]) -> Note:
    return Note(nid, Scope("u"), content, keywords, tags, "", {}, T0, T0, None, 0, 10.0, 0.5)


def test_a_neighbour_changed_twice_in_a_batch_builds_on_its_first_change():
    first = _note("b1", "oat milk", ["oat milk"], ["drinks"])
    second = _note("b2", "harbour cafe", ["harbour"], ["places"])
    stored = {"n1": Neighbour("n1", "Oat milk latte at the harbour", ["latte"], ["food"])}
    plan = EvolutionPlan([first, second], [[("n1", 0.9)], [("n1", 0.8)]], CFG)
    changes = plan.evolutions(stored)
    assert [(c.note_id, c.cause_id) for c in changes] == [("n1", "b1"), ("n1", "b2")]
    assert (changes[0].old_keywords, changes[0].keywords) == (["latte"], ["latte", "oat milk"])
    assert (changes[1].old_keywords, changes[1].keywords) == (["latte", "oat milk"], ["latte", "oat milk", "harbour"])
    assert (changes[1].old_tags, changes[1].tags) == (["food", "drinks"], ["food", "drinks", "places"])


def test_a_note_of_the_batch_evolves_from_its_drafted_values():
    first = _note("b1", "Oat milk latte at the harbour", ["latte"], [])
    second = _note("b2", "harbour walk", ["harbour"], ["places"])
    changes = EvolutionPlan([first, second], [[], [("b1", 0.9)]], CFG).evolutions({})
    assert [(c.note_id, c.old_keywords, c.keywords, c.tags) for c in changes] == [
        ("b1", ["latte"], ["latte", "harbour"], ["places"])]


def test_neighbours_below_the_threshold_or_gone_do_not_evolve():
    new = _note("b1", "harbour", ["harbour"], ["places"])
    stored = {"n1": Neighbour("n1", "the harbour", [], [])}
    plan = EvolutionPlan([new], [[("gone", 0.95), ("n1", CFG.evolve_threshold - 0.01)]], CFG)
    assert plan.evolutions(stored) == []
    assert [c.note_id for c in EvolutionPlan([new], [[("gone", 0.95), ("n1", 0.9)]], CFG).evolutions(stored)] == ["n1"]


def test_stored_ids_leave_out_the_batch_and_come_in_id_order():
    a, b = _note("b1", "x", [], []), _note("b2", "y", [], [])
    plan = EvolutionPlan([a, b], [[("n9", 0.9), ("n1", 0.8)], [("b1", 0.9), ("n9", 0.7)]], CFG)
    assert plan.stored_ids() == ["n1", "n9"]
