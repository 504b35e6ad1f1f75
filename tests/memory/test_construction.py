from datetime import UTC, datetime

from memory.construction import build_draft
from memory.keywords import extract_keywords
from memory.tagging import category_tags


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
