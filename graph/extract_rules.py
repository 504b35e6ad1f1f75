"""The deterministic extractor: entities and facts from chat text with regexes, no LLM.

Each sentence is matched against the rule table of graph/patterns.py; its first date (resolved by
graph/dates.py against the episode's time) becomes the facts' ``valid_at``, else the episode's time.
"I/we/my" become the USER placeholder that the graph maps to the scope's user entity.

Usage: ``RuleExtractor().extract("I moved to Paris last June.", reference_time)``.
"""
from __future__ import annotations

import re
from datetime import datetime

from graph.dates import MONTHS, WEEKDAYS, find_dates
from graph.patterns import CORRECTION, NAME, ORDINALS, RELATIONS, RULES, Rule
from graph.types import USER, ExtractedEntity, ExtractedFact, Extraction

_POSSESSIVE = re.compile(r"['’]s$")
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_NAMES = re.compile(NAME)
_LEADING = {"then", "yesterday", "today", "tomorrow", "and", "but", "so", "also", "well", "oh", "hi", "hey",
            "hello", "yes", "no", "ok", "okay", "thanks", "thank", "last", "next", "this", "that", "the", "a", "an",
            "my", "our", "we", "i", "i'm", "i've", "i'd", "i'll", "it", "it's", "what", "when", "where", "who",
            "how", "why", "do", "does", "did", "can", "could", "would", "should", "will", "is", "are", "was",
            "were", "if", "in", "on", "at", "for", "after", "before", "since", "actually", "sorry", "recently",
            "now", "he", "she", "they", "there", "here", "please", "sure", "maybe", "just", "as", "by", "let",
            "let's", "any", "some", "one", "not", "or", "wait", "correction", "btw", "lol", "wow", "great",
            "nice", "cool", "good", "anyway", "you", "your", "you're", "speaking", "besides", "also,", "dear", "mr", "mrs", "ms", "dr"}
_STOP_NAMES = _LEADING | set(MONTHS) | set(WEEKDAYS) | {"christmas", "easter", "english"}
_ORG_WORDS = {"university", "college", "school", "inc", "corp", "corporation", "company", "labs", "bank",
              "institute", "hospital", "group", "ltd", "llc", "gmbh", "foundation", "agency", "studio", "studios"}
_PRONOUNS = {"it", "this", "that", "them", "him", "her", "you", "those", "these", "everything", "nothing", "one"}
_TRAILING = re.compile(r"\s+(?:a lot|very much|so much|too|a bit|as well|anymore|now|here|there|lately)$", re.I)
_CLAUSE_CHARS = 200
_CONTINUATION = re.compile(r"(?:,\s*|\s+)(?:and|but|then|so)\s+(?=(?:now\s+|also\s+|recently\s+|just\s+|then\s+)?"
                           r"(?:live|lives|work|works|moved|started|joined|got|love|loves|like|likes|hate|hates|have|has|"
                           r"adopted|study|studies|studied|grew|quit|left|became|am|is)\b)")
_FIRST_PERSON = re.compile(r"^\W*(?:\w+,?\s+){0,3}?(?:I|we|We)\b")
_NOT_NAME = re.compile(r",\s*not\s+(?:in\s+|at\s+|for\s+)?(" + NAME + ")")
_NEEDS = {
    "from": re.compile(r"'m|'re|'s|\b(?:am|is|are|was|were|grew|born|raised|come|comes|came)\b", re.I),
    "job_title": re.compile(r"'m|'s|'re|\b(?:am|is|are|was|were|work|works|working|worked|became|become)\b", re.I),
}
_PAST = re.compile(r"\blived\b", re.I)
_PERFECT = re.compile(r"'ve|\b(?:have|has)\b", re.I)
_WISH = re.compile(r"'d\b|\bwould\b", re.I)
_THIRD_PERSON = re.compile(r"\b(?:likes|loves|enjoys|adores|hates|dislikes|does|doesn't|is)\b|'s\b", re.I)
_NOT_LIKED = {"idea", "ideas", "sound", "those", "these", "that", "this", "your", "how", "what", "when", "more",
              "some", "them", "best", "better", "most", "the", "a", "an", "tips", "suggestions", "suggestion", "way", "fact", "look", "thought", "it"}
# Verbs that count the same thing ("finished my 5th project" updates "completed 4 projects").
_SAME_VERB = {"finished": "completed"}
_PERSON_PREDICATES = {"lives_in", "works_at", "job_title", "studies_at", "studied_at", "from", "likes", "dislikes", "diet"}


class RuleExtractor:
    """Regex extraction, a few hundred microseconds per message. Usage: see module doc."""

    name = "rules"

    def extract(self, text: str, reference_time: datetime) -> Extraction:
        """Entities and facts of one episode; never raises for odd text."""
        state = _State()
        for sentence in _SENTENCES.split(text):
            if sentence.strip():
                _sentence(sentence.strip(), reference_time, state)
        return Extraction(entities=list(state.entities.values()), facts=state.facts)


class _State:
    def __init__(self) -> None:
        self.entities: dict[str, ExtractedEntity] = {}
        self.facts: list[ExtractedFact] = []
        self.seen: set[tuple[str, str, str, bool]] = set()
        self.last_person: str | None = None
        self.corrects: str | None = None
        self.precision: str | None = None

    def entity(self, name: str, type_: str, role: str | None = None) -> None:
        old = self.entities.get(name)
        if old is None or (old.type == "entity" and type_ != "entity") or (role and not old.role):
            self.entities[name] = ExtractedEntity(name, type_ if old is None or type_ != "entity" else old.type,
                                                  role or (old.role if old else None))
        if type_ == "person" and name != USER:
            self.last_person = name

    def fact(self, fact: ExtractedFact) -> None:
        key = (fact.subject, fact.predicate, fact.object, fact.negated)
        if key not in self.seen:
            self.seen.add(key)
            self.facts.append(fact)


def _sentence(sentence: str, ref: datetime, state: _State) -> None:
    dates = find_dates(sentence, ref)
    valid_at = dates[0].when if dates else ref
    state.precision = dates[0].granularity if dates else None
    correction = bool(CORRECTION.search(sentence))
    state.corrects = _wrong_value(sentence) if correction else None
    for name in _mentions(sentence):
        state.entity(name, _guess_type(name))
    _rules(sentence, state, valid_at, correction)
    for clause in _continuations(sentence, state):  # after the sentence, which names the subject
        _rules(clause, state, valid_at, correction)


def _rules(text: str, state: _State, valid_at: datetime, correction: bool) -> None:
    for rule in RULES:
        for m in rule.regex.finditer(text):
            _apply(rule, m, state, valid_at, correction)


def _continuations(sentence: str, state: _State) -> list[str]:
    """"I live in Berlin and work at Google": the second clause, with its subject said again."""
    starts = [m.end() for m in _CONTINUATION.finditer(sentence)]
    if not starts:
        return []
    if _FIRST_PERSON.match(sentence):
        subject = "I"
    elif state.last_person is not None:
        subject = "she"  # resolves to the last person named, like a pronoun
    else:
        return []
    ends = [*starts[1:], len(sentence)]  # each clause up to the next one: linear in the sentence
    return [f"{subject} {sentence[s:e][:_CLAUSE_CHARS]}" for s, e in zip(starts, ends, strict=True)]


def _apply(rule: Rule, m: re.Match[str], state: _State, valid_at: datetime, correction: bool) -> None:
    if not _plausible(rule, m):
        return
    subject = _subject(m, state, rule.predicate)
    obj = _clean_object(m.group("obj"), rule.object_type)
    if subject is None or obj is None or obj == subject:
        return
    kind, verb = m.groupdict().get("kind"), m.groupdict().get("verb")
    if rule.predicate == "count" and kind and (nth := _cardinal(obj)) is not None:
        obj, kind = nth, _plural(kind)  # "my 5th project" -> 5 projects
    if rule.predicate == "duration" and kind:
        kind = re.sub(r"^my\s+", "", kind)
    predicate = _predicate(rule.predicate, kind, verb)
    role = RELATIONS.get(kind.lower()) if rule.predicate == "relation" and kind else kind if rule.predicate == "has_pet" else None
    state.entity(obj, rule.object_type, role)
    sentence = rule.template.format(s=subject, o=obj, k=(kind or "").lower() if rule.predicate not in ("count", "duration") else kind,
                                    v=" ".join((verb or "").split()))
    corrects = state.corrects if correction and state.corrects != obj else None
    state.fact(ExtractedFact(subject, predicate, obj, sentence, valid_at, None, correction, rule.negated, corrects,
                             state.precision))


def _wrong_value(sentence: str) -> str | None:
    m = _NOT_NAME.search(sentence)
    if m is None:
        return None
    name = _strip_name(m.group(1))
    return name or None


def _plausible(rule: Rule, m: re.Match[str]) -> bool:
    """Checks a regex cannot express cheaply: the words between subject and object, the object's head."""
    if "subj" not in m.re.groupindex:
        return True
    between = m.string[m.end("subj"):m.start("obj")]
    need = _NEEDS.get(rule.predicate)
    if need is not None and not need.search(between):
        return False  # "Luna from Petco", "Write an artist statement"
    if _PAST.search(between) and not _PERFECT.search(between):
        return False  # "I lived in Rome" is over; "I've lived in Rome since 2021" is not
    if rule.predicate in ("likes", "dislikes"):
        if _WISH.search(between) or m.group("obj").lower().startswith("to "):
            return False  # "I'd like to ask ...": a wish, not a preference
        if m.group("name") and not _THIRD_PERSON.search(between):
            return False  # "FPS like Battlefield", "Seems like ..."
        head = m.group("obj").lower().split()
        return bool(head) and head[0] not in _NOT_LIKED and not (head[0] == "the" and len(head) > 1 and head[1] in _NOT_LIKED)
    return True


def _subject(m: re.Match[str], state: _State, predicate: str) -> str | None:
    groups = m.groupdict()
    said = groups.get("subj")
    if said is None or said in ("I", "we", "We"):
        state.entity(USER, "person")
        return USER
    if said.lower() in ("he", "she"):
        return state.last_person
    if groups.get("rel"):
        role = RELATIONS[groups["rel"].lower()]
        name = _strip_name(groups["relname"]) if groups.get("relname") else f"{USER}'s {groups['rel'].lower()}"
        if not name:
            return None
        state.entity(USER, "person")
        state.entity(name, "person", role)
        state.fact(ExtractedFact(USER, role, name, f"{name} is {USER}'s {groups['rel'].lower()}"))
        return name
    name = _strip_name(groups.get("name") or "")
    if not name:
        return None
    state.entity(name, "person" if predicate in _PERSON_PREDICATES else _guess_type(name))
    return name


def _predicate(predicate: str, kind: str | None, verb: str | None = None) -> str:
    if predicate == "relation" and kind:
        return RELATIONS[kind.lower()]
    if predicate == "favorite" and kind:
        return "favorite_" + re.sub(r"\W+", "_", kind.lower()).strip("_")
    if predicate in ("count", "duration") and kind and verb:
        word = verb.split()[0].lower()
        return f"{predicate}_" + re.sub(r"\W+", "_", f"{_SAME_VERB.get(word, word)} {kind}".lower()).strip("_")
    return predicate


def _cardinal(value: str) -> str | None:
    """"5th" or "fifth" -> "5"; None for anything that is not an ordinal."""
    m = re.fullmatch(r"(\d+)(?:st|nd|rd|th)", value)
    if m:
        return m.group(1)
    return str(ORDINALS.index(value.lower()) + 1) if value.lower() in ORDINALS else None


def _plural(noun: str) -> str:
    """English plural of the last word, by the regular rules (class -> classes, hobby -> hobbies)."""
    low = noun.lower()
    if low.endswith(("ss", "sh", "ch", "x")):
        return noun + "es"
    if low.endswith("y") and low[-2:-1] not in ("a", "e", "i", "o", "u", ""):
        return noun[:-1] + "ies"
    return noun if low.endswith("s") else noun + "s"


def _clean_object(raw: str, object_type: str) -> str | None:
    if object_type in ("thing", "diet", "title", "value"):
        text = _TRAILING.sub("", raw.strip(" ,.;:!?'\""))
        text = re.sub(r"^(?:to\s+|the\s+)", "", text)
        return None if not text or text.lower() in _PRONOUNS else text
    return _strip_name(raw) or None


def _strip_name(raw: str) -> str:
    words = raw.split()
    while words and words[0].lower().strip(",") in _STOP_NAMES:
        words.pop(0)
    while words and words[-1].lower() in ("of", "the", "de", "for", "&"):
        words.pop()
    return _POSSESSIVE.sub("", " ".join(words).strip(" ,'"))


def _mentions(sentence: str) -> list[str]:
    """Capitalised names that are not sentence openers, headings ("Tips:") or title-case lines."""
    out = []
    for m in _NAMES.finditer(sentence):
        name = _strip_name(m.group(0))
        words = name.split()
        if not name or len(name) < 2 or name.lower() in _STOP_NAMES or len(words) > 4:
            continue
        opener = not re.search(r"[A-Za-z]", sentence[:m.start()]) and m.group(0).split()[0] == words[0]
        if opener and len(words) == 1 and not name.isupper():
            continue  # "Remember", "Consider": any word is capitalised at the start of a sentence
        if sentence[m.end():].lstrip("*_ ").startswith(":"):
            continue
        out.append(name)
    return out


def _guess_type(name: str) -> str:
    words = name.split()
    if len(words) == 1 and name.isupper() and len(name) >= 2:
        return "organization"
    if words and words[-1].lower().strip(".") in _ORG_WORDS or words[0].lower() in _ORG_WORDS:
        return "organization"
    return "entity"
