"""Turning model text into a validated JSON object, and the prompt that asks for a repair.

Usage::

    value = parse_and_validate(extract_json(text) or text, schema)   # or StructuredOutputError
    retry = repair_messages(messages, text, err, schema=schema)      # one more try, then give up

Pure functions: no engine, no I/O. Engines without constrained decoding (remote ones) use all
three; the local engine's constrained output only needs ``parse_and_validate`` as a last check.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.validators import validator_for

from inference.engine import Message
from inference.errors import InvalidParams, StructuredOutputError

__all__ = ["extract_json", "json_instruction", "parse_and_validate", "repair_messages"]

_MAX_CANDIDATES = 256  # '{' positions tried by extract_json: bounds work on brace-heavy prose
_MAX_ECHO_CHARS = 2000  # how much of a bad reply is quoted back in the repair prompt


def parse_and_validate(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Strictly parse ``text`` as one JSON object and validate it against ``schema``.

    Usage: ``parse_and_validate('{"a": 1}', {"type": "object"}) == {"a": 1}``.
    Raises StructuredOutputError naming what failed (parse position or schema path), and
    InvalidParams when the schema itself is not a valid JSON schema.
    """
    value = _parse_strict(text)
    if not isinstance(value, dict):
        raise StructuredOutputError(f"expected a JSON object, got {type(value).__name__}")
    _validate(value, schema)
    return value


def _parse_strict(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise StructuredOutputError(
            f"output is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def _reject_constant(name: str) -> Any:
    # Python accepts NaN and Infinity; JSON does not, and neither do most consumers.
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def _validate(value: dict[str, Any], schema: dict[str, Any]) -> None:
    validator_class = validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        raise InvalidParams(f"invalid JSON schema: {exc.message}") from exc
    error = best_match(validator_class(schema).iter_errors(value))
    if error is not None:
        raise StructuredOutputError(f"output does not match the schema at {_path(error)}: {error.message}")


def _path(error: ValidationError) -> str:
    parts = ["$"]
    for step in error.absolute_path:
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(parts)


def extract_json(text: str) -> str | None:
    """The first JSON object in model text, or None: skips prose, code fences, stray braces.

    Usage: ``extract_json('Sure! ```json\\n{"a": 1}\\n``` Done.') == '{"a": 1}'``.
    """
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(_MAX_CANDIDATES):
        if start < 0:
            return None
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return text[start:end]
        start = text.find("{", start + 1)
    return None


def json_instruction(schema: dict[str, Any]) -> str:
    """The instruction that asks a model for JSON matching ``schema`` (for a system message).

    Usage: ``[{"role": "system", "content": json_instruction(schema)}, *messages]``.
    """
    return (
        "Reply with a single JSON object and nothing else: no prose, no code fences. "
        f"It must validate against this JSON schema:\n{json.dumps(schema, ensure_ascii=False)}"
    )


def repair_messages(
    messages: Sequence[Message],
    bad_text: str,
    error: str | BaseException,
    *,
    schema: dict[str, Any] | None = None,
) -> list[Message]:
    """The conversation for the one repair retry: the bad reply, then what was wrong with it.

    Usage: ``engine.generate(repair_messages(messages, text, err, schema=schema))``.
    """
    shown = bad_text if len(bad_text) <= _MAX_ECHO_CHARS else bad_text[:_MAX_ECHO_CHARS] + " ..."
    request = f"Your reply was not usable: {error}. Answer again with only the corrected JSON object."
    if schema is not None:
        request += f" It must validate against this JSON schema:\n{json.dumps(schema, ensure_ascii=False)}"
    return [
        *messages,
        {"role": "assistant", "content": shown},
        {"role": "user", "content": request},
    ]
