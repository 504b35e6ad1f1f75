"""Table-driven tests for parsing, validating, extracting and repairing model JSON."""
from __future__ import annotations

import pytest

from inference.errors import InvalidParams, StructuredOutputError
from inference.json_output import extract_json, json_instruction, parse_and_validate, repair_messages

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "Ada", "age": 36}', {"name": "Ada", "age": 36}),
        ('  {"name":"Ada","age":0,"tags":["a"]}\n', {"name": "Ada", "age": 0, "tags": ["a"]}),
        ('{"name": "Zoë ✓", "age": 1, "address": {"city": "Zürich"}}',
         {"name": "Zoë ✓", "age": 1, "address": {"city": "Zürich"}}),
    ],
)
def test_parse_and_validate_accepts(text: str, expected: dict) -> None:
    assert parse_and_validate(text, PERSON) == expected


@pytest.mark.parametrize(
    ("text", "message_part"),
    [
        ("", "not valid JSON"),
        ('{"name": "Ada", "age": 36', "not valid JSON"),
        ('{"name": "Ada", "age": 36,}', "not valid JSON"),
        ("{'name': 'Ada', 'age': 36}", "not valid JSON"),
        ('```json\n{"name": "Ada", "age": 36}\n```', "not valid JSON"),
        ('{"name": "Ada", "age": 36} trailing', "not valid JSON"),
        ('{"name": "Ada", "age": NaN}', "NaN is not valid JSON"),
        ('{"name": "Ada", "age": Infinity}', "not valid JSON"),
        ('{"name": "A\tda", "age": 3}', "not valid JSON"),
        ('["Ada", 36]', "expected a JSON object, got list"),
        ('"Ada"', "expected a JSON object, got str"),
        ('{"name": "Ada"}', "at $: 'age' is a required property"),
        ('{"name": "Ada", "age": -1}', "at $.age: -1 is less than the minimum of 0"),
        ('{"name": "Ada", "age": 1.5}', "at $.age: 1.5 is not of type 'integer'"),
        ('{"name": "Ada", "age": 1, "tags": []}', "at $.tags: [] should be non-empty"),
        ('{"name": "Ada", "age": 1, "tags": ["c"]}', "at $.tags[0]: 'c' is not one of ['a', 'b']"),
        ('{"name": "Ada", "age": 1, "address": {}}', "at $.address: 'city' is a required property"),
        ('{"name": "Ada", "age": 1, "extra": 1}', "Additional properties are not allowed"),
    ],
)
def test_parse_and_validate_names_the_failure(text: str, message_part: str) -> None:
    with pytest.raises(StructuredOutputError) as info:
        parse_and_validate(text, PERSON)
    assert message_part in str(info.value)


def test_parse_error_reports_position() -> None:
    with pytest.raises(StructuredOutputError, match=r"line 2 column \d+"):
        parse_and_validate('{"name": "Ada",\n "age" 36}', PERSON)


def test_invalid_schema_is_the_callers_fault() -> None:
    with pytest.raises(InvalidParams, match="invalid JSON schema"):
        parse_and_validate("{}", {"type": "no-such-type"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('Sure! Here it is: {"a": 1}. Anything else?', '{"a": 1}'),
        ('```json\n{"a": {"b": [1, 2]}}\n```', '{"a": {"b": [1, 2]}}'),
        ('```\n{"a": "}"}\n```\n', '{"a": "}"}'),
        ('Use {name} as a placeholder. {"a": 1}', '{"a": 1}'),
        ('{"broken": } then {"ok": true}', '{"ok": true}'),
        ('first {"x": 1} second {"y": 2}', '{"x": 1}'),
        ('[1, 2] and {"z": "{"}', '{"z": "{"}'),
        ('{"quote": "say \\"hi\\" {now}"}', '{"quote": "say \\"hi\\" {now}"}'),
        ("no json here", None),
        ("{not json}", None),
        ('{"unterminated": "x', None),
        ("", None),
    ],
)
def test_extract_json(text: str, expected: str | None) -> None:
    assert extract_json(text) == expected


def test_extract_json_is_bounded_on_brace_heavy_text() -> None:
    assert extract_json("{" * 100_000) is None


def test_extract_then_validate_is_the_tolerant_path() -> None:
    text = 'The person:\n```json\n{"name": "Ada", "age": 36}\n```'
    assert parse_and_validate(extract_json(text) or text, PERSON) == {"name": "Ada", "age": 36}


def test_repair_messages_appends_the_bad_reply_and_the_reason() -> None:
    messages = [{"role": "system", "content": "extract"}, {"role": "user", "content": "Ada is 36"}]
    error = StructuredOutputError("output does not match the schema at $: 'age' is a required property")
    repaired = repair_messages(messages, '{"name": "Ada"}', error, schema=PERSON)
    assert repaired[:2] == messages and len(repaired) == 4
    assert repaired[2] == {"role": "assistant", "content": '{"name": "Ada"}'}
    assert repaired[3]["role"] == "user"
    assert "'age' is a required property" in repaired[3]["content"]
    assert '"required": ["name", "age"]' in repaired[3]["content"]
    assert messages == [{"role": "system", "content": "extract"}, {"role": "user", "content": "Ada is 36"}]


@pytest.mark.parametrize(("length", "shown"), [(10, 10), (2000, 2000), (5000, 2004)])
def test_repair_messages_truncates_long_replies(length: int, shown: int) -> None:
    repaired = repair_messages([], "x" * length, "not valid JSON")
    assert len(repaired[0]["content"]) == shown
    assert "schema" not in repaired[1]["content"]


def test_json_instruction_carries_the_schema() -> None:
    text = json_instruction({"type": "object", "properties": {"città": {"type": "string"}}})
    assert "JSON object" in text and '"città"' in text
