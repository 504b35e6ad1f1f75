"""Relative and absolute dates in chat text, resolved against the episode's reference time.

Pure functions. Every result is the start of the period it names, at midnight UTC, with its
granularity ("day", "week", "month", "year"). Conventions (one per ambiguous phrase, so tests can
pin them): "last June" is the most recent June before the reference month; "next June" the first
after it; "in March" (no year) the nearest March; "Friday"/"on Friday" the most recent Friday (today
counts); "next Friday" the first Friday after today; "last Friday" the most recent before today.

Usage: ``find_dates("I moved here two weeks ago", ref)[0].when``.
"""
from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"])}
MONTHS.update({m[:3]: i for m, i in list(MONTHS.items())})
MONTHS["sept"] = 9
WEEKDAYS = {d: i for i, d in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])}
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3,
           "several": 3, "couple of": 2, "few": 3}
OFFSETS = {"today": 0, "tonight": 0, "this morning": 0, "this afternoon": 0, "this evening": 0,
           "yesterday": -1, "tomorrow": 1, "the day before yesterday": -2, "the day after tomorrow": 2}

_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_NUM = r"(?:\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|(?:a )?couple of|(?:a )?few|several)"
_UNIT = r"(?:day|week|month|year)s?"

_PATTERN = re.compile(
    r"\b(?:"
    r"(?P<iso>(?P<iy>\d{4})-(?P<im>\d{2})(?:-(?P<id>\d{2}))?)"
    r"|(?P<md>(?P<mdm>" + _MONTH + r")\.?\s+(?P<mdd>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?P<mdy>\d{4}))?)"
    r"|(?P<dm>(?P<dmd>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<dmm>" + _MONTH + r")(?:,?\s+(?P<dmy>\d{4}))?)"
    r"|(?P<my>(?P<mym>" + _MONTH + r")\s+(?P<myy>\d{4}))"
    r"|(?P<rel>the day (?:before yesterday|after tomorrow)|today|tonight|yesterday|tomorrow"
    r"|this (?:morning|afternoon|evening))"
    r"|(?P<ago>(?P<agon>" + _NUM + r")\s+(?P<agou>" + _UNIT + r")\s+ago)"
    r"|(?P<inn>in\s+(?P<innn>" + _NUM + r")\s+(?P<innu>" + _UNIT + r"))"
    r"|(?P<lpm>(?P<lpmw>last|next|this)\s+(?P<lpmm>" + _MONTH + r"))"
    r"|(?P<lpu>(?P<lpuw>last|next|this)\s+(?P<lpuu>week(?:end)?|month|year))"
    r"|(?P<lpd>(?:(?P<lpdw>last|next|this|on)\s+)?(?P<lpdd>" + _DAY + r"))"
    r"|(?P<inm>(?:in|since|from|until|during)\s+(?P<inmm>" + _MONTH + r")(?:,?\s+(?P<inmy>\d{4}))?)"
    r"|(?P<iny>(?:in|since|from|until|during)\s+(?P<inyy>(?:19|20)\d{2}))"
    r")\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DateMention:
    """A date found in text: the start of the named period, its granularity and where it was."""

    when: datetime
    granularity: str
    text: str
    start: int
    end: int


def find_dates(text: str, ref: datetime) -> list[DateMention]:
    """All date expressions in ``text``, resolved against ``ref`` (aware). Usage: see module doc."""
    out = []
    for m in _PATTERN.finditer(text):
        resolved = _resolve(m, _midnight(ref))
        if resolved is not None:
            out.append(DateMention(resolved[0], resolved[1], m.group(0), m.start(), m.end()))
    return out


def resolve_date(expression: str, ref: datetime) -> DateMention | None:
    """The first date in ``expression``, or None. Usage: ``resolve_date("last June", ref)``."""
    found = find_dates(expression, ref)
    return found[0] if found else None


def add_months(when: datetime, months: int) -> datetime:
    """``when`` moved by whole months, the day clamped to the target month's length."""
    index = when.year * 12 + when.month - 1 + months
    year, month = divmod(index, 12)
    return when.replace(year=year, month=month + 1, day=min(when.day, monthrange(year, month + 1)[1]))


def _midnight(when: datetime) -> datetime:
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def _resolve(m: re.Match[str], day: datetime) -> tuple[datetime, str] | None:
    for name, handler in _HANDLERS:
        if m.group(name):
            try:
                return handler(m, day)
            except ValueError:  # "February 31", month 13: not a date after all
                return None
    return None


def _iso(m: re.Match[str], day: datetime) -> tuple[datetime, str]:
    d = m.group("id")
    return datetime(int(m.group("iy")), int(m.group("im")), int(d or 1), tzinfo=UTC), "day" if d else "month"


def _month_day(month: str, dom: str, year: str | None, day: datetime) -> tuple[datetime, str]:
    mon = _month_num(month)
    if year:
        return datetime(int(year), mon, int(dom), tzinfo=UTC), "day"
    return _nearest(datetime(day.year, mon, int(dom), tzinfo=UTC), day), "day"


def _nearest(candidate: datetime, day: datetime) -> datetime:
    """The occurrence of a yearless date nearest to ``day`` (this year, last year or next year)."""
    options = [candidate.replace(year=candidate.year + k) for k in (-1, 0, 1)]
    return min(options, key=lambda c: (abs((c - day).days), c > day))


def _month_num(name: str) -> int:
    low = name.lower()
    return MONTHS["sept"] if low.startswith("sept") else MONTHS[low[:3]]


def _in_month(name: str, year: str | None, day: datetime) -> datetime:
    first = datetime(int(year) if year else day.year, _month_num(name), 1, tzinfo=UTC)
    return first if year else _nearest(first, day.replace(day=1))


def _number(word: str) -> int:
    word = " ".join(word.lower().split())
    return int(word) if word.isdigit() else NUMBERS[word]


def _shift(day: datetime, n: int, unit: str) -> tuple[datetime, str]:
    unit = unit.lower().rstrip("s")
    if unit == "day":
        return day + timedelta(days=n), "day"
    if unit == "week":
        return day + timedelta(weeks=n), "day"
    if unit == "month":
        return add_months(day, n), "day"
    return add_months(day, 12 * n), "day"


def _relative_month(which: str, mon: int, day: datetime) -> tuple[datetime, str]:
    this_year = day.replace(month=mon, day=1)
    which = which.lower()
    if which == "this":
        return this_year, "month"
    if which == "last":
        return (this_year if mon < day.month else this_year.replace(year=day.year - 1)), "month"
    return (this_year if mon > day.month else this_year.replace(year=day.year + 1)), "month"


def _relative_unit(which: str, unit: str, day: datetime) -> tuple[datetime, str]:
    step = {"last": -1, "this": 0, "next": 1}[which.lower()]
    unit = unit.lower()
    if unit.startswith("week"):
        monday = day - timedelta(days=day.weekday())
        start = monday + timedelta(weeks=step)
        return (start + timedelta(days=5), "day") if unit == "weekend" else (start, "week")
    if unit == "month":
        return add_months(day.replace(day=1), step), "month"
    return day.replace(year=day.year + step, month=1, day=1), "year"


def _weekday(which: str | None, name: str, day: datetime) -> tuple[datetime, str]:
    target = WEEKDAYS[name.lower()]
    back = (day.weekday() - target) % 7  # days since the most recent such weekday (0 = today)
    which = (which or "").lower()
    if which == "next":
        return day + timedelta(days=(target - day.weekday()) % 7 or 7), "day"
    if which == "last":
        return day - timedelta(days=back or 7), "day"
    if which == "this":
        return day - timedelta(days=day.weekday()) + timedelta(days=target), "day"
    return day - timedelta(days=back), "day"


_HANDLERS = [
    ("iso", _iso),
    ("md", lambda m, d: _month_day(m.group("mdm"), m.group("mdd"), m.group("mdy"), d)),
    ("dm", lambda m, d: _month_day(m.group("dmm"), m.group("dmd"), m.group("dmy"), d)),
    ("my", lambda m, d: (datetime(int(m.group("myy")), _month_num(m.group("mym")), 1, tzinfo=UTC), "month")),
    ("rel", lambda m, d: (d + timedelta(days=OFFSETS[" ".join(m.group("rel").lower().split())]), "day")),
    ("ago", lambda m, d: _shift(d, -_number(m.group("agon")), m.group("agou"))),
    ("inn", lambda m, d: _shift(d, _number(m.group("innn")), m.group("innu"))),
    ("lpm", lambda m, d: _relative_month(m.group("lpmw"), _month_num(m.group("lpmm")), d)),
    ("lpu", lambda m, d: _relative_unit(m.group("lpuw"), m.group("lpuu"), d)),
    ("lpd", lambda m, d: _weekday(m.group("lpdw"), m.group("lpdd"), d)),
    ("inm", lambda m, d: (_in_month(m.group("inmm"), m.group("inmy"), d), "month")),
    ("iny", lambda m, d: (datetime(int(m.group("inyy")), 1, 1, tzinfo=UTC), "year")),
]
