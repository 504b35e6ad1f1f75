"""Link plans without a database: which of a batch's links are stored and how its close neighbours
evolve, keyed by id."""
from memory.config import LinkingConfig
from memory.linking import RELATED, LinkPlan, Neighbour
from memory.types import Link, Note, Scope
from tests.helpers import T0

CFG = LinkingConfig()


def _note(nid: str, content: str, keywords: list[str], tags: list[str], links: tuple[str, ...] = ()) -> Note:
    note = Note(nid, Scope("u"), content, keywords, tags, "", {}, T0, T0, None, 0, 10.0, 0.5)
    note.links = [Link(nid, target, RELATED, 0.5, T0) for target in links]
    return note


def test_a_neighbour_changed_twice_in_a_batch_builds_on_its_first_change():
    first = _note("b1", "oat milk", ["oat milk"], ["drinks"])
    second = _note("b2", "harbour cafe", ["harbour"], ["places"])
    stored = {"n1": Neighbour("n1", "Oat milk latte at the harbour", ["latte"], ["food"])}
    changes = LinkPlan([first, second], [[("n1", 0.9)], [("n1", 0.8)]], CFG).decide(stored).evolutions
    assert [(c.note_id, c.cause_id) for c in changes] == [("n1", "b1"), ("n1", "b2")]
    assert (changes[0].old_keywords, changes[0].keywords) == (["latte"], ["latte", "oat milk"])
    assert (changes[1].old_keywords, changes[1].keywords) == (["latte", "oat milk"], ["latte", "oat milk", "harbour"])
    assert (changes[1].old_tags, changes[1].tags) == (["food", "drinks"], ["food", "drinks", "places"])


def test_a_note_of_the_batch_evolves_from_its_drafted_values():
    first = _note("b1", "Oat milk latte at the harbour", ["latte"], [])
    second = _note("b2", "harbour walk", ["harbour"], ["places"])
    changes = LinkPlan([first, second], [[], [("b1", 0.9)]], CFG).decide({}).evolutions
    assert [(c.note_id, c.old_keywords, c.keywords, c.tags) for c in changes] == [
        ("b1", ["latte"], ["latte", "harbour"], ["places"])]


def test_neighbours_below_the_threshold_or_gone_do_not_evolve():
    new = _note("b1", "harbour", ["harbour"], ["places"])
    stored = {"n1": Neighbour("n1", "the harbour", [], [])}
    below = LinkPlan([new], [[("gone", 0.95), ("n1", CFG.evolve_threshold - 0.01)]], CFG)
    assert below.decide(stored).evolutions == []
    above = LinkPlan([new], [[("gone", 0.95), ("n1", 0.9)]], CFG)
    assert [c.note_id for c in above.decide(stored).evolutions] == ["n1"]


def test_links_to_notes_gone_since_the_search_are_dropped_and_links_within_the_batch_kept():
    a = _note("b1", "x", [], [], links=("n1", "gone"))
    b = _note("b2", "y", [], [], links=("b1", "n2"))
    stored = {nid: Neighbour(nid, "", [], []) for nid in ("n1", "n2")}
    kept = LinkPlan([a, b], [[], []], CFG).decide(stored).links
    assert [(link.source_id, link.target_id) for link in kept] == [("b1", "n1"), ("b2", "b1"), ("b2", "n2")]


def test_stored_ids_name_link_targets_and_close_neighbours_outside_the_batch_in_id_order():
    a = _note("b1", "x", [], [], links=("n5",))
    b = _note("b2", "y", [], [], links=("b1", "n9"))
    plan = LinkPlan([a, b], [[("n9", 0.9), ("n1", 0.8)], [("b1", 0.9), ("n9", 0.7)]], CFG)
    assert plan.stored_ids() == ["n1", "n5", "n9"]
