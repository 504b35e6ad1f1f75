"""The pattern table of the rule extractor: regex building blocks and one Rule per statement shape.

Kept apart from the extraction loop so a new predicate is one table row. Names are capitalised
word runs ("New York University", "NYU"); verbs match in any case; "I/we/my" mean the user.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# At most five words: bounded, so a long title-case line cannot make the matcher backtrack for seconds.
NAME = r"(?:(?!I\b)[A-Z][\w'&-]*(?:\s+(?:of|the|de|du|la|von|van|for|&)\s+[A-Z][\w'&-]*|\s+(?!I\b)[A-Z][\w'&-]*){0,4})"
PHRASE = r"(?:[\w'-]+(?:\s+(?!and\b|but\b|because\b|so\b|when\b|since\b|until\b|in\s+\d)[\w'-]+){0,4})"
RELATIONS = {
    "sister": "sister", "brother": "brother", "mother": "mother", "mom": "mother", "mum": "mother",
    "father": "father", "dad": "father", "wife": "partner", "husband": "partner", "partner": "partner",
    "boyfriend": "partner", "girlfriend": "partner", "fiance": "partner", "fiancé": "partner",
    "fiancée": "partner", "son": "son", "daughter": "daughter", "friend": "friend", "colleague": "colleague",
    "coworker": "colleague", "co-worker": "colleague", "boss": "boss", "manager": "boss", "roommate": "roommate",
    "cousin": "cousin", "aunt": "aunt", "uncle": "uncle", "grandma": "grandmother", "grandmother": "grandmother",
    "grandpa": "grandfather", "grandfather": "grandfather", "neighbor": "neighbour", "neighbour": "neighbour",
    "best friend": "friend", "therapist": "therapist", "doctor": "doctor",
}
PETS = ("dog", "cat", "puppy", "kitten", "parrot", "hamster", "rabbit", "bunny", "bird", "horse", "fish",
        "turtle", "snake", "guinea pig", "lizard", "ferret")
TITLES = ("engineer", "developer", "designer", "teacher", "nurse", "doctor", "lawyer", "manager", "student",
          "scientist", "analyst", "accountant", "writer", "chef", "architect", "consultant", "researcher",
          "professor", "programmer", "artist", "photographer", "pharmacist", "dentist", "journalist", "editor",
          "librarian", "mechanic", "electrician", "plumber", "pilot", "firefighter", "officer", "intern",
          "director", "founder", "ceo", "cto", "product manager", "data scientist", "barista", "waiter",
          "cashier", "paramedic", "therapist", "veterinarian", "vet", "musician", "translator", "salesperson")
DIETS = ("vegetarian", "vegan", "pescatarian", "keto", "gluten-free", "dairy-free", "lactose intolerant",
         "paleo", "flexitarian")

_REL = "|".join(sorted((re.escape(r) for r in RELATIONS), key=len, reverse=True))
_PET = "|".join(sorted(PETS, key=len, reverse=True))
_TITLE = "|".join(sorted(TITLES, key=len, reverse=True))
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
            "eleventh", "twelfth")
_ORDINAL = "|".join(ORDINALS)
# Words that end the thing counted ("my 5th project since ...", "my 4th class and ...").
_NOT_KIND = (r"(?:and|but|or|since|of|for|in|at|with|on|this|last|today|yesterday|so|to|from|that|which|"
             r"ever|already|now|too|after|before|when|while|because)\b")
_COUNT = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|fifty|a hundred"
_DIET = "|".join(sorted((re.escape(d) for d in DIETS), key=len, reverse=True))
REL = _REL
SUBJ = (r"(?P<subj>\b(?:I|[Ww]e)\b|\b[Mm]y\s+(?P<rel>" + _REL + r")(?:,?\s+(?P<relname>" + NAME + r"))?"
        r"|\b(?:[Hh]e|[Ss]he)\b|(?P<name>" + NAME + r"))")
AUX = (r"(?:\s*(?:'m|'re|'s|'ve|'d|'ll|am|is|are|was|were|have|has|had|just|recently|now|currently|still|"
       r"finally|also|actually|already|will|be|been|then|eventually|officially|really|even|since|going\s+to)\b)*")
# "Actually", "sorry", "I meant", "not X": the new statement corrects an older one.
CORRECTION = re.compile(r"\b(?:actually|sorry|i meant|correction|no wait|to correct|i misspoke|my mistake)\b|,\s*not\s+",
                        re.IGNORECASE)


@dataclass(frozen=True)
class Rule:
    """One statement shape: ``regex`` has groups ``subj`` (or none: the user) and ``obj``."""

    predicate: str
    regex: re.Pattern[str]
    object_type: str
    template: str  # "{s} lives in {o}"
    negated: bool = False


def _rule(predicate: str, verbs: str, obj: str, object_type: str, template: str, negated: bool = False,
          sep: str = r"\s+") -> Rule:
    # ``sep`` is empty when every verb alternative already ends in whitespace (or may be empty).
    pattern = SUBJ + AUX + r"\s+(?i:" + verbs + r")" + sep + r"(?P<obj>" + obj + r")"
    return Rule(predicate, re.compile(pattern), object_type, template, negated)


def _user_rule(predicate: str, pattern: str, object_type: str, template: str) -> Rule:
    return Rule(predicate, re.compile(pattern), object_type, template)


RULES: tuple[Rule, ...] = (
    _rule("lives_in", r"(?:live|lives|lived|living|reside|resides|residing|based|settled)\s+in", NAME, "place", "{s} lives in {o}"),
    _rule("lives_in", r"(?:moved|move|moving|relocated|relocating|relocate)\s+(?:back\s+)?to", NAME, "place", "{s} lives in {o}"),
    _rule("works_at", r"(?:work|works|working|worked)\s+(?:at|for)|(?:joined|join|joining)"
          r"|(?:started|start|starting)\s+(?:a\s+new\s+job\s+|working\s+|a\s+job\s+)?at"
          r"|(?:got|accepted|took)\s+(?:a\s+|an\s+)?(?:new\s+)?(?:job|offer|position|role)\s+(?:at|from|with)"
          r"|(?:got\s+)?hired\s+(?:at|by)|an?\s+(?:[a-z]+\s+)?(?:" + _TITLE + r")\s+(?:at|for)",
          NAME, "organization", "{s} works at {o}"),
    _rule("works_at", r"(?:(?:left|quit)\s+my\s+(?:job|position|role)\s+(?:at|with)|left|leave|leaving|quit|quitting|resigned\s+from|(?:got\s+|was\s+)?laid\s+off\s+from"
          r"|no\s+longer\s+work\s+(?:at|for)|stopped\s+working\s+(?:at|for)|don't\s+work\s+(?:at|for)\s+anymore)",
          NAME, "organization", "{s} works at {o}", negated=True),
    _rule("job_title", r"(?:work|works|working)\s+as\s+(?:an?\s+)?|(?:an?|became\s+an?)\s+",
          r"(?:[a-z]+\s+)?(?i:" + _TITLE + r")\b", "title", "{s} works as {o}", sep=""),
    _rule("studies_at", r"(?:study|studies|studying|enrolled|a\s+student)\s+(?:at|in)|(?:go|goes|going)\s+to\s+school\s+at",
          NAME, "organization", "{s} studies at {o}"),
    _rule("studied_at", r"(?:studied|graduated|went\s+to\s+school)\s+(?:at|from|in)", NAME, "organization", "{s} studied at {o}"),
    _rule("from", r"from|(?:grew\s+up|was\s+born|raised)\s+in|(?:come|comes)\s+from", NAME, "place", "{s} is from {o}"),
    _rule("likes", r"(?:like|likes|love|loves|enjoy|enjoys|adore|adores)", PHRASE, "thing", "{s} likes {o}"),
    _rule("likes", r"(?:no\s+longer\s+(?:like|love|enjoy)|(?:don't|doesn't)\s+(?:like|enjoy)\s+(?:\w+\s+)?anymore)",
          PHRASE, "thing", "{s} likes {o}", negated=True),
    _rule("dislikes", r"(?:hate|hates|dislike|dislikes|can't\s+stand|(?:don't|doesn't)\s+like)", PHRASE, "thing",
          "{s} dislikes {o}"),
    _rule("diet", r"(?:an?\s+|now\s+|fully\s+|strictly\s+|gone\s+|went\s+|turned\s+|became\s+)*", _DIET, "diet", "{s} is {o}", sep=""),
    _user_rule("diet", r"\b[Mm]y\s+diet\s+is\s+(?:now\s+)?(?P<obj>" + PHRASE + ")", "diet", "{s} is {o}"),
    _user_rule("name", r"\b(?:[Mm]y\s+name\s+is|[Cc]all\s+me)\s+(?P<obj>" + NAME + ")", "person", "{s} is called {o}"),
    _user_rule("age", r"\bI(?:'m|\s+am)\s+(?:now\s+)?(?P<obj>\d{1,3})(?:\s+years?\s+old|\s+y/?o)\b", "value",
               "{s} is {o} years old"),
    _user_rule("has_pet", r"\b(?:[Mm]y|[Oo]ur)\s+(?:new\s+)?(?P<kind>" + _PET + r")(?:'s\s+name\s+is|,?\s+(?:named|called)|,)?\s+"
               r"(?P<obj>" + NAME + ")", "pet", "{s} has a {k} named {o}"),
    _user_rule("has_pet", r"\bI\s+(?:have|got|adopted|rescued)\s+an?\s+(?:new\s+)?(?:\w+\s+)?(?P<kind>" + _PET + r")\s+"
               r"(?:named|called)\s+(?P<obj>" + NAME + ")", "pet", "{s} has a {k} named {o}"),
    _user_rule("favorite", r"\b[Mm]y\s+(?:all-time\s+)?favou?rite\s+(?P<kind>\w+(?:\s+\w+)?)\s+is\s+(?P<obj>" + PHRASE + ")",
               "thing", "{s}'s favorite {k} is {o}"),
    # Counts the user updates over time ("I now lead a team of five engineers"): one value at a time.
    _user_rule("count", r"\bI(?:'ve|\s+have)?(?:\s+(?:actually|just|now|already|finally|also|currently|only))*\s+"
               r"(?P<verb>watched|completed|finished|read|visited|tried|lead\s+a\s+team\s+of|manage\s+a\s+team\s+of|"
               r"have|need|own|got|made|ran|saved|earned|collected|attended|lost|gained)\s+"
               r"(?:a\s+total\s+of\s+)?(?:(?:about|around|over|almost|nearly|exactly)\s+)?(?:\*\*)?(?P<obj>\d[\d,.]*k?|" + _COUNT + r")\s+"
               r"(?P<kind>(?:[A-Za-z-]+\s+){0,2}?[A-Za-z-]+s)\b", "value", "{s} {v} {o} {k}"),
    # "I just finished my 5th project": the count so far is 5 (the kind is made plural in the
    # extractor, so it updates "I've completed 4 projects").
    _user_rule("count", r"\bI(?:'ve|\s+have)?(?:\s+(?:actually|just|now|finally|also))*\s+"
               r"(?P<verb>watched|completed|finished|read|visited|ran|attended)\s+my\s+"
               r"(?P<obj>\d{1,4}(?:st|nd|rd|th)|" + _ORDINAL + r")\s+(?P<kind>[A-Za-z-]+(?:\s+(?!" + _NOT_KIND + r")[A-Za-z-]+){0,2})\b"
               r"(?!\s+(?:of|in)\b)",
               "value", "{s} {v} {o} {k}"),
    # "I've been using my Fitbit for 6 months now": how long something has gone on, one value at a time.
    _user_rule("duration", r"\bI(?:'ve|\s+have)(?:\s+(?:actually|just|now|already|also))*\s+been\s+"
               r"(?P<verb>using|doing|learning|playing|practi[cs]ing|taking|running|collecting|studying|working\s+on|"
               r"living\s+in|working\s+at)\s+(?P<kind>(?:my\s+)?[\w'-]+(?:\s+[\w'-]+){0,3}?)\s+for\s+"
               r"(?:(?:about|around|over|almost|nearly|exactly)\s+)?(?P<obj>(?:\d{1,3}|a|an|" + _COUNT + r")\s+"
               r"(?:days?|weeks?|months?|years?))\b", "value", "{s} has been {v} {k} for {o}"),
    _user_rule("relation", r"\b[Mm]y\s+(?:(?:older|younger|little|big|best|new|old)\s+)?(?P<kind>" + _REL + r")"
               r"(?:'s\s+name\s+is|,?\s+(?:named|called)|,)?\s+(?P<obj>" + NAME + ")", "person", "{o} is {s}'s {k}"),
    _user_rule("relation", r"\b(?P<obj>" + NAME + r")\s+is\s+my\s+(?:(?:older|younger|little|big|best|new|old)\s+)?(?P<kind>"
               + _REL + ")", "person", "{o} is {s}'s {k}"),
)
