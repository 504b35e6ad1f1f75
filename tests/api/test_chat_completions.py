"""``/v1/chat/completions`` on a real uvicorn server on 127.0.0.1 with the real SmolLM2 engine:
OpenAI's wire format by hand (httpx), and Engram used as a model by ``LiteLLMEngine`` — the
litellm engine's test against this endpoint."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.api.chat_support import engine, make_tenants  # noqa: F401
from tests.api.served_support import serve
from tests.api.rest_support import bearer

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
LISBON = "I moved to Lisbon in May and I love the trams there."


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder, engine):  # noqa: F811
    with serve(tmp_path_factory.mktemp("openai"), embedder, engine) as base, \
            httpx.Client(base_url=base, timeout=120) as client:
        key = make_tenants(client)["acme"]
        r = client.post("/v1/memories", json={"content": LISBON, "user_id": "ann"}, headers=bearer(key))
        assert r.status_code == 201
        yield base, key, client


def completion(client, key, **body):
    payload = {"model": "engram", "user": "ann", "max_tokens": 24,
               "messages": [{"role": "user", "content": "Which city do I live in?"}], **body}
    return client.post("/v1/chat/completions", json=payload, headers={**bearer(key), "X-Engram-Remember": "false"})


def test_a_completion_has_openais_shape_and_the_memories_used(served) -> None:
    _, key, client = served
    r = completion(client, key)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    assert out["usage"]["completion_tokens"] > 0 and out["usage"]["prompt_tokens"] > 0
    assert any(m["content"] == LISBON for m in out["engram"]["memories"]) and out["engram"]["written"] == []


def test_the_scope_may_come_from_a_header_and_is_required(served) -> None:
    _, key, client = served
    body = {"model": "engram", "max_tokens": 4, "messages": [{"role": "user", "content": "Where do I live?"}]}
    r = client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert (r.status_code, r.json()["code"]) == (400, "scope_required")
    r = client.post("/v1/chat/completions", json=body,
                    headers={**bearer(key), "X-Engram-User": "ann", "X-Engram-Remember": "false"})
    assert r.status_code == 200 and any(m["content"] == LISBON for m in r.json()["engram"]["memories"])


def test_errors_carry_openais_error_object_beside_engrams_fields(served) -> None:
    import openai

    base, key, client = served
    body = {"model": "engram", "max_tokens": 4, "messages": [{"role": "user", "content": "Where do I live?"}]}
    r = client.post("/v1/chat/completions", json=body, headers=bearer(key))
    out = r.json()
    assert out["code"] == "scope_required"
    assert out["error"] == {"message": out["message"], "type": "invalid_request_error", "param": None,
                            "code": "scope_required"}
    assert "error" not in client.get("/v1/memories/nope", headers=bearer(key)).json()  # other routes unchanged
    # The openai SDK shows the message of the error object.
    sdk = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=60)
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(**body)
    assert bad.value.code == "scope_required" and "X-Engram-User" in bad.value.message
    wrong = openai.OpenAI(base_url=f"{base}/v1", api_key="eng_wrong", max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError) as denied:
        wrong.chat.completions.create(**body, user="ann")
    assert denied.value.body["type"] == "authentication_error"


def test_json_schema_response_format_is_decoded_under_the_schema(served) -> None:
    _, key, client = served
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY}}
    r = completion(client, key, response_format=fmt, max_tokens=32)
    assert r.status_code == 200, r.text
    answer = json.loads(r.json()["choices"][0]["message"]["content"])
    assert isinstance(answer, dict) and isinstance(answer["city"], str)


def test_streaming_sends_chunks_then_done(served) -> None:
    base, key, _ = served
    payload = {"model": "engram", "user": "ann", "max_tokens": 12, "stream": True,
               "messages": [{"role": "user", "content": "Which city do I live in?"}]}
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=payload, timeout=120,
                      headers={**bearer(key), "X-Engram-Remember": "false"}) as r:
        assert r.status_code == 200
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip()


def test_litellm_uses_engram_as_a_model_with_memory(served) -> None:
    from inference.litellm_engine import LiteLLMEngine
    from inference.params import GenerationParams

    base, key, _ = served
    llm = LiteLLMEngine("openai/engram", api_base=f"{base}/v1", api_key=key, timeout=120, max_retries=0,
                        json_mode="json_schema", extra={"extra_headers": {"X-Engram-User": "ann", "X-Engram-Remember": "false"}})
    params = GenerationParams(max_tokens=16)
    assert llm.generate([{"role": "user", "content": "Which city do I live in?"}], params).strip()
    assert "".join(llm.stream("Which city do I live in?", params)).strip()
    answer = llm.complete_json([{"role": "user", "content": "Which city do I live in?"}], CITY,
                               GenerationParams(max_tokens=32))
    assert isinstance(answer["city"], str)
