"""Metadata filters with mem0's operators, parsed once and evaluated as a pure predicate.

Grammar (JSON):
    {"AND": [F, ...]} | {"OR": [F, ...]} | {"NOT": F}
    {"field": value}                      equality
    {"field": {"op": value, ...}}         ops: eq ne in nin gt gte lt lte contains icontains
Several keys in one object are ANDed. ``field`` names a note attribute (event_time, created_at,
tags, keywords, importance, recall_count) or a metadata key (dots reach into nested objects).
A missing field satisfies only ``ne`` and ``nin``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from memory.errors import InvalidFilter, InvalidTimestamp
from memory.timeutil import to_utc

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]

_MISSING = object()
_NOTE_FIELDS = frozenset({"event_time", "created_at", "tags", "keywords", "importance", "recall_count", "content"})
_TIME_FIELDS = frozenset({"event_time", "created_at"})
_LOGIC = frozenset({"AND", "OR", "NOT"})
_MAX_DEPTH = 16


def compile_filter(spec: Any) -> Predicate:
    """Validate ``spec`` and return a predicate over note records. Raises InvalidFilter.

    Usage: ``pred = compile_filter({"AND": [{"city": "Paris"}, {"year": {"gte": 2020}}]})``.
    """
    return _compile(spec, depth=0)


def _compile(spec: Any, depth: int) -> Predicate:
    if depth > _MAX_DEPTH:
        raise InvalidFilter("filter nested too deeply")
    if not isinstance(spec, Mapping) or not spec:
        raise InvalidFilter(f"a filter must be a non-empty object, got {spec!r}")
    parts = [_compile_key(key, value, depth) for key, value in spec.items()]
    return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))


def _compile_key(key: Any, value: Any, depth: int) -> Predicate:
    if not isinstance(key, str) or not key:
        raise InvalidFilter(f"filter keys must be non-empty strings, got {key!r}")
    if key in _LOGIC:
        return _compile_logic(key, value, depth)
    if isinstance(value, Mapping):
        if not value:
            raise InvalidFilter(f"no operator given for field {key!r}")
        checks = [_compile_op(key, op, operand) for op, operand in value.items()]
        return lambda r: all(c(r) for c in checks)
    return _compile_op(key, "eq", value)


def _compile_logic(key: str, value: Any, depth: int) -> Predicate:
    if key == "NOT":
        inner = _compile_list(value, depth) if isinstance(value, list) else [_compile(value, depth + 1)]
        return lambda r: not all(p(r) for p in inner)
    if not isinstance(value, list) or not value:
        raise InvalidFilter(f"{key} takes a non-empty list of filters")
    parts = _compile_list(value, depth)
    if key == "AND":
        return lambda r: all(p(r) for p in parts)
    return lambda r: any(p(r) for p in parts)


def _compile_list(items: list[Any], depth: int) -> list[Predicate]:
    if not items:
        raise InvalidFilter("an empty list of filters")
    return [_compile(item, depth + 1) for item in items]


def _compile_op(field: str, op: Any, operand: Any) -> Predicate:
    if op not in _OPS:
        raise InvalidFilter(f"unknown operator {op!r} on field {field!r}; use one of {sorted(_OPS)}")
    if op in ("in", "nin") and not isinstance(operand, list):
        raise InvalidFilter(f"operator {op!r} on {field!r} takes a list")
    if op in ("contains", "icontains") and not isinstance(operand, str | int | float):
        raise InvalidFilter(f"operator {op!r} on {field!r} takes a string or number")
    operand = _coerce_operand(field, operand)
    test = _OPS[op]
    missing_ok = op in ("ne", "nin")

    def predicate(record: Record) -> bool:
        actual = _lookup(record, field)
        if actual is _MISSING or actual is None:
            return missing_ok
        try:
            return bool(test(actual, operand))
        except TypeError:
            return False

    return predicate


def _coerce_operand(field: str, operand: Any) -> Any:
    if field not in _TIME_FIELDS:
        return operand
    try:
        if isinstance(operand, list):
            return [to_utc(v) for v in operand]
        return to_utc(operand)
    except InvalidTimestamp as exc:
        raise InvalidFilter(f"field {field!r} compares times: {exc}") from exc


def _lookup(record: Record, field: str) -> Any:
    if field in _NOTE_FIELDS:
        return record.get(field, _MISSING)
    node: Any = record.get("metadata") or {}
    for part in field.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _eq(actual: Any, operand: Any) -> bool:
    if isinstance(actual, list) and not isinstance(operand, list):
        return operand in actual
    return actual == operand


def _in(actual: Any, operand: list[Any]) -> bool:
    if isinstance(actual, list):
        return any(a in operand for a in actual)
    return actual in operand


def _contains(actual: Any, operand: Any, fold: bool) -> bool:
    if isinstance(actual, list):
        items = [str(a) for a in actual]
        return any(_fold(str(operand), fold) == _fold(a, fold) for a in items)
    return _fold(str(operand), fold) in _fold(str(actual), fold)


def _fold(text: str, fold: bool) -> str:
    return text.casefold() if fold else text


def _ordered(cmp: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def test(actual: Any, operand: Any) -> bool:
        if isinstance(actual, bool) or isinstance(operand, bool):
            return False
        if isinstance(actual, datetime) != isinstance(operand, datetime):
            return False
        return cmp(actual, operand)

    return test


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _eq,
    "ne": lambda a, o: not _eq(a, o),
    "in": _in,
    "nin": lambda a, o: not _in(a, o),
    "gt": _ordered(lambda a, o: a > o),
    "gte": _ordered(lambda a, o: a >= o),
    "lt": _ordered(lambda a, o: a < o),
    "lte": _ordered(lambda a, o: a <= o),
    "contains": lambda a, o: _contains(a, o, fold=False),
    "icontains": lambda a, o: _contains(a, o, fold=True),
}
