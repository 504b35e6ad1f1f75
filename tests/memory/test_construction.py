import gzip
import json
import re
from datetime import UTC, datetime

from memory import tagging
from memory.construction import build_draft
from memory.keywords import extract_keywords
from memory.tagging import category_tags, longest_cue_pattern
from tests.helpers import SHARED_DATA


def test_keywords_are_salient_phrases_not_stopwords():
    kws = extract_keywords("My dog Max got his rabies vaccine yesterday at the Oakwood vet clinic.")
    assert "oakwood vet clinic" in kws
    assert any("rabies vaccine" in k for k in kws)
    assert not {"my", "his", "the", "at", "yesterday"} & set(kws)


def test_keywords_of_text_without_content_words_is_empty():
    assert extract_keywords("and the of it is") == []
    assert extract_keywords("") == []


def test_keywords_handle_unicode():
    kws = extract_keywords("Wir waren im Café Müller in Zürich — très bien 🙂")
    assert any("zürich" in k for k in kws)


def test_category_tags():
    tags = category_tags("We booked a flight and a hotel for our vacation; my sister comes too")
    assert tags[0] == "travel"
    assert "family" in tags
    assert category_tags("qwerty zxcv") == []


def test_draft_has_keywords_tags_and_one_line_context():
    when = datetime(2024, 3, 5, tzinfo=UTC)
    draft = build_draft("I'm training for the Berlin marathon\nin September.", event_time=when,
                        metadata={"role": "user"})
    assert "role:user" in draft.tags and "fitness" in draft.tags
    assert "berlin marathon" in draft.keywords
    assert "\n" not in draft.context
    assert draft.context.startswith("user on 2024-03-05: about ")


def _alternation(cues):
    """The reference: every cue in one alternation, longest first (the first that matches wins)."""
    return re.compile(r"\b(" + "|".join(map(re.escape, sorted(cues, key=len, reverse=True))) + ")", re.IGNORECASE)


def test_the_cue_trie_finds_what_a_longest_first_alternation_finds():
    cues = ["vet", "veteran", "rent", "renovat", "ai", "app", "appointment", "machine learning", "mov", "movie"]
    trie = re.compile(r"\b(" + longest_cue_pattern(cues) + ")", re.IGNORECASE)
    reference = _alternation(cues)
    for text in ["The veteran vet renovated a rental", "An APPointment about the app and AI",
                 "machine learning movies; Machine learnt moving", "vetting rents and ai-powered apps", ""]:
        assert trie.findall(text) == reference.findall(text), text
    assert trie.findall("the veteran's appointment") == ["veteran", "appointment"]


def test_category_tags_match_the_reference_on_real_chat_turns():
    reference = _alternation(list(tagging._CATEGORIES_OF))
    with gzip.open(SHARED_DATA / "longmemeval_s_dev.json.gz", "rt") as fh:
        data = json.load(fh)
    turns = [turn["content"] for item in data[:20] for session in item["haystack_sessions"] for turn in session]
    assert len(turns) > 5000
    for text in turns:
        assert tagging._PATTERN.findall(text) == reference.findall(text)
