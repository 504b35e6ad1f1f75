"""What an LLM may answer as a note's keywords and tags, taken from the note itself.

A 135M model asked for "keywords" in free text copies whatever example it saw or repeats one word;
validation then rejects it. Instead the enrichment schema offers only these candidates as ``enum``
values, so a constrained decoder can only pick words the note contains (grounded by construction)
and the model's job shrinks to choosing among them.

- Keywords: the note's salient phrases (RAKE, ``memory.keywords``) then its other content words,
  best first, dealt into three disjoint groups; the schema's first three keywords come one from each
  group, so three distinct keywords exist by construction (JSON schema's ``uniqueItems`` is not
  enforced by the grammar).
- Tags: three facets with disjoint vocabularies — a life area (the tagging lexicon's categories), a
  kind of memory, and a topic word of the note — so three distinct tags exist by construction too.

- Context: a pattern of the note's own words (``context_pattern``), naming at least one content word.

Usage: ``g = grounding("We moved to Lisbon, the flat is by the river.")``; ``g.keyword_groups``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from memory.keywords import extract_keywords
from memory.stopwords import STOPWORDS
from memory.tagging import CATEGORIES

# Kinds of memory, disjoint from the areas; what a note *is* rather than what it is about.
KINDS = ("event", "plan", "fact", "habit", "opinion", "goal", "experience", "question", "request", "feeling",
         "relationship", "change")
AREAS = tuple(c for c in CATEGORIES if c not in KINDS)
GROUPS = 3
_WORD = re.compile(r"[^\W\d_][\w'’\-]*")
_TOPIC = re.compile(r"^[a-z][a-z0-9\-]{2,}$")
_TOKEN = re.compile(r"[^\W_][\w'’\-]*")
_MAX_VOCABULARY = 120
# Words a one-line description needs beyond the note's own (whose pronouns are the user's "I").
GLUE = ("the", "a", "an", "to", "in", "on", "at", "of", "for", "with", "and", "about", "is", "was", "has", "had",
        "their", "they", "them", "his", "her", "user", "user's")
CONTEXT_WORDS = 12


@dataclass(frozen=True)
class Grounding:
    """Candidate terms of one note. ``keyword_groups`` is empty when the note has fewer than three
    distinct candidates (nothing to choose three keywords from)."""

    keywords: list[str]
    keyword_groups: list[list[str]]
    topics: list[str]
    words: list[str]
    vocabulary: list[str]


def grounding(content: str, max_candidates: int = 24, max_chars: int = 40,
              banned: frozenset[str] = frozenset()) -> Grounding:
    """The candidates of ``content`` (``banned``: words a model must not answer, e.g. the schema's own)."""
    phrases = [p for p in extract_keywords(content, top=max_candidates) if _usable(p, max_chars, banned)]
    words = _content_words(content, banned)
    ranked = _unique([*phrases, *words])[:max_candidates]
    groups = [ranked[i::GROUPS] for i in range(GROUPS)] if len(ranked) >= GROUPS else []
    facets = set(AREAS) | set(KINDS)
    topics = _unique([w for w in words if _TOPIC.match(w) and w not in facets])[:max_candidates]
    vocabulary = _unique([w for m in _TOKEN.finditer(content) for w in (m.group(0), m.group(0).lower())])
    return Grounding(ranked, groups, topics, _unique(words)[:max_candidates], vocabulary[:_MAX_VOCABULARY])


def context_pattern(ground: Grounding) -> str:
    """A regex for the one-line context: "The user" (or "The assistant") and then only words of the
    note itself (plus a few words of glue), at least one of them a content word, ending in a full
    stop. It is about the note by construction, and a small model cannot wander into the rest of
    its vocabulary (free text after "This note" drifted into junk tokens)."""
    words = _alternation(ground.vocabulary + list(GLUE))
    content = _alternation([v for w in ground.words for v in (w, w[:1].upper() + w[1:])])
    return f"^The (user|assistant) (({words}),? ){{0,{CONTEXT_WORDS}}}({content})(,? ({words})){{0,{CONTEXT_WORDS}}}\\.$"


def _alternation(words: list[str]) -> str:
    return "|".join(map(re.escape, sorted(set(words), key=lambda w: (-len(w), w))))


def _content_words(content: str, banned: frozenset[str]) -> list[str]:
    """Words of three letters or more that are not stopwords, in order of appearance, lowercased."""
    out = []
    for match in _WORD.finditer(content):
        word = match.group(0).lower().strip("'’-")
        if len(word) > 2 and word not in STOPWORDS and word not in banned:
            out.append(word)
    return out


def _usable(phrase: str, max_chars: int, banned: frozenset[str]) -> bool:
    words = phrase.split()
    # validation grounds a keyword by a content word of three letters or more (enrichment._stems)
    return 2 <= len(phrase) <= max_chars and not (set(words) & banned) and any(len(w) > 2 for w in words)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
