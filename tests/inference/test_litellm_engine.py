"""LiteLLMEngine against a real scripted OpenAI-compatible server on 127.0.0.1.

Every call goes through litellm and the OpenAI client over HTTP: no patching.
"""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from inference.engine import Engine
from inference.errors import ContextOverflow, EngineUnavailable, InvalidParams, StructuredOutputError
from inference.litellm_engine import LiteLLMEngine
from inference.params import GenerationParams
from tests.inference.servers import Reply, ScriptedServer

MODEL = "openai/test-model"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
USER = [{"role": "user", "content": "Ada Lovelace is 36."}]


@pytest.fixture(scope="module")
def running_server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture()
def server(running_server: ScriptedServer) -> ScriptedServer:
    running_server.reset()
    return running_server


def make_engine(server: ScriptedServer, **options) -> LiteLLMEngine:
    settings = {"api_base": server.base_url, "api_key": "sk-test", "timeout": 5.0, "backoff": 0.01}
    return LiteLLMEngine(MODEL, **{**settings, **options})


# ---- text -------------------------------------------------------------------------------------


def test_is_an_engine(server: ScriptedServer) -> None:
    engine = make_engine(server)
    assert isinstance(engine, Engine)
    assert engine.model_id == MODEL


def test_generate_returns_the_reply_and_sends_the_params(server: ScriptedServer) -> None:
    server.push(Reply("Hello there"))
    params = GenerationParams(max_tokens=7, temperature=0.5, top_p=0.9, seed=3, stop=("\n",))
    assert make_engine(server).generate(USER, params) == "Hello there"
    (body,) = server.requests
    assert body["model"] == "test-model"
    assert body["messages"] == USER
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (7, 0.5, 0.9, 3)
    assert body["stop"] == ["\n"]
    assert not body.get("stream")


def test_a_string_prompt_is_one_user_message(server: ScriptedServer) -> None:
    assert make_engine(server).generate("Say hi") == "ok"
    assert server.requests[0]["messages"] == [{"role": "user", "content": "Say hi"}]


def test_stream_yields_pieces_in_order(server: ScriptedServer) -> None:
    server.push(Reply("one two three"))
    pieces = list(make_engine(server).stream(USER))
    assert pieces == ["one", " two", " three"]
    assert server.requests[0]["stream"] is True


def test_extra_options_reach_the_server(server: ScriptedServer) -> None:
    extra = {"presence_penalty": 0.5, "extra_body": {"guided_decoding_backend": "xgrammar"}}
    make_engine(server, extra=extra).generate(USER)
    assert server.requests[0]["presence_penalty"] == 0.5
    assert server.requests[0]["guided_decoding_backend"] == "xgrammar"


# ---- retries, timeouts, errors ----------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_errors_are_retried(server: ScriptedServer, status: int) -> None:
    server.push(Reply(status=status), Reply(status=status), Reply("recovered"))
    assert make_engine(server, max_retries=2).generate(USER) == "recovered"
    assert len(server.requests) == 3


def test_retries_run_out_into_engine_unavailable(server: ScriptedServer) -> None:
    server.push(*[Reply(status=500)] * 3)
    with pytest.raises(EngineUnavailable, match="500"):
        make_engine(server, max_retries=2).generate(USER)
    assert len(server.requests) == 3


def test_backoff_grows_exponentially(server: ScriptedServer) -> None:
    server.push(Reply(status=503), Reply(status=503), Reply("ok"))
    start = time.monotonic()
    make_engine(server, max_retries=2, backoff=0.2).generate(USER)
    assert time.monotonic() - start >= 0.2 + 0.4


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, InvalidParams), (422, InvalidParams), (401, EngineUnavailable), (403, EngineUnavailable),
     (404, EngineUnavailable)],
)
def test_caller_errors_are_not_retried(server: ScriptedServer, status: int, error: type) -> None:
    server.push(Reply(status=status), Reply("must not be reached"))
    with pytest.raises(error):
        make_engine(server, max_retries=2).generate(USER)
    assert len(server.requests) == 1


def test_context_window_exceeded_is_context_overflow(server: ScriptedServer) -> None:
    message = "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens."
    server.push(Reply(message, status=400))
    with pytest.raises(ContextOverflow):
        make_engine(server).generate(USER)
    assert len(server.requests) == 1


def test_a_slow_server_times_out_into_engine_unavailable(server: ScriptedServer) -> None:
    server.push(Reply(delay=1.5), Reply(delay=1.5))
    start = time.monotonic()
    with pytest.raises(EngineUnavailable):
        make_engine(server, timeout=0.3, max_retries=1).generate(USER)
    assert time.monotonic() - start < 1.4
    assert len(server.requests) == 2


def test_a_timeout_then_success_recovers(server: ScriptedServer) -> None:
    server.push(Reply(delay=1.5), Reply("in time"))
    assert make_engine(server, timeout=0.3, max_retries=1).generate(USER) == "in time"


def test_nothing_listening_is_engine_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = LiteLLMEngine(MODEL, api_base=f"http://127.0.0.1:{port}/v1", api_key="sk-test",
                           timeout=1.0, max_retries=1, backoff=0.01)
    with pytest.raises(EngineUnavailable):
        engine.generate(USER)


def test_stream_retries_until_connected(server: ScriptedServer) -> None:
    server.push(Reply(status=503), Reply("late but fine"))
    assert "".join(make_engine(server).stream(USER)) == "late but fine"
    assert len(server.requests) == 2


def test_stream_broken_midway_is_engine_unavailable_without_retry(server: ScriptedServer) -> None:
    server.push(Reply("a b c d e", break_after=2), Reply("must not be reached"))
    received = []
    with pytest.raises(EngineUnavailable):
        for piece in make_engine(server).stream(USER):
            received.append(piece)
    assert received == ["a", " b"]
    assert len(server.requests) == 1


def test_stopping_a_stream_early_hangs_up(server: ScriptedServer) -> None:
    server.push(Reply(" ".join(["word"] * 50), piece_delay=0.05))
    stream = make_engine(server).stream(USER)
    assert next(stream) == "word"
    stream.close()
    deadline = time.monotonic() + 3
    while server.abandoned_streams == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.abandoned_streams == 1


def test_constructor_rejects_nonsense() -> None:
    for options in ({"timeout": 0}, {"max_retries": -1}, {"backoff": -1}, {"json_mode": "yaml"}):
        with pytest.raises(InvalidParams):
            LiteLLMEngine(MODEL, **options)


# ---- JSON -------------------------------------------------------------------------------------


def test_complete_json_valid_first_time(server: ScriptedServer) -> None:
    server.push(Reply('{"name": "Ada", "age": 36}'))
    assert make_engine(server).complete_json(USER, PERSON) == {"name": "Ada", "age": 36}
    (body,) = server.requests
    # litellm does not know this model, so "auto" asks for a JSON object and prompts the schema.
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system"
    assert json.dumps(PERSON) in body["messages"][0]["content"]
    assert body["messages"][1:] == USER


def test_complete_json_extracts_from_prose_without_a_retry(server: ScriptedServer) -> None:
    server.push(Reply('Here you go:\n```json\n{"name": "Ada", "age": 36}\n```'))
    assert make_engine(server).complete_json(USER, PERSON) == {"name": "Ada", "age": 36}
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [("I think her name is Ada.", "not valid JSON"), ('{"name": "Ada"}', "'age' is a required property"),
     ('{"name": "Ada", "age": "36"}', "is not of type 'integer'")],
)
def test_complete_json_repairs_once(server: ScriptedServer, bad: str, reason: str) -> None:
    server.push(Reply(bad), Reply('{"name": "Ada", "age": 36}'))
    assert make_engine(server).complete_json(USER, PERSON) == {"name": "Ada", "age": 36}
    first, second = server.requests
    assert second["messages"][: len(first["messages"])] == first["messages"]
    assistant, user = second["messages"][-2:]
    assert assistant == {"role": "assistant", "content": bad}
    assert user["role"] == "user" and reason in user["content"]


def test_complete_json_gives_up_after_one_repair(server: ScriptedServer) -> None:
    server.push(Reply("no"), Reply('{"name": 1}'), Reply('{"name": "Ada", "age": 36}'))
    with pytest.raises(StructuredOutputError, match="after one repair retry"):
        make_engine(server).complete_json(USER, PERSON)
    assert len(server.requests) == 2


def test_complete_json_retries_transport_errors_too(server: ScriptedServer) -> None:
    server.push(Reply(status=500), Reply('{"name": "Ada", "age": 36}'))
    assert make_engine(server).complete_json(USER, PERSON) == {"name": "Ada", "age": 36}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("json_schema", {"type": "json_schema", "json_schema": {"name": "response", "schema": PERSON}}),
        ("json_object", {"type": "json_object"}),
        ("off", None),
    ],
)
def test_json_mode_chooses_the_response_format(server: ScriptedServer, mode: str, expected) -> None:
    server.push(Reply('{"name": "Ada", "age": 36}'))
    make_engine(server, json_mode=mode).complete_json(USER, PERSON)
    assert server.requests[0].get("response_format") == expected


# ---- tokens -----------------------------------------------------------------------------------


def test_count_tokens_for_text_and_messages(server: ScriptedServer) -> None:
    engine = make_engine(server)
    short, long = engine.count_tokens("hello world"), engine.count_tokens("hello world " * 50)
    assert 0 < short < long
    assert engine.count_tokens(USER) > engine.count_tokens(USER[0]["content"])
    assert server.requests == []  # counting never calls the server
