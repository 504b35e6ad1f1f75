"""Chat with a remote model (``ENGRAM_LLM=<litellm model>``): the memory path is the same, the
model is a real scripted OpenAI-compatible server on 127.0.0.1 reached through litellm."""
from __future__ import annotations

import pytest

from tests.api.chat_support import make_tenants, start_chat
from tests.api.rest_support import bearer
from tests.inference.servers import Reply, ScriptedServer

LISBON = "I moved to Lisbon in May and I love the trams there."


@pytest.fixture(scope="module")
def remote(tmp_path_factory, embedder):
    with ScriptedServer() as server:
        client, _ = start_chat(tmp_path_factory.mktemp("remote"), embedder, None, llm="openai/test-model",
                               llm_api_base=server.base_url, llm_api_key="sk-test")
        with client:
            key = bearer(make_tenants(client)["acme"])
            r = client.post("/v1/memories", json={"content": LISBON, "user_id": "ann"}, headers=key)
            assert r.status_code == 201
            yield client, key, server


def test_a_remote_model_gets_the_memories_in_its_prompt(remote) -> None:
    client, key, server = remote
    server.reset()
    server.push(Reply(content="You live in Lisbon."))
    r = client.post("/v1/chat", json={"user_id": "ann", "message": "Where do I live?", "max_tokens": 16},
                    headers=key)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["reply"] == "You live in Lisbon." and out["model"] == "openai/test-model"
    assert any(m["content"] == LISBON for m in out["memories"])
    sent = server.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and LISBON in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": "Where do I live?"}
    assert "chunk_reused_tokens" not in out["stats"] and out["stats"]["total_ms"] > 0
    assert len(out["written"]) == 2


def test_an_unreachable_remote_model_is_503(tmp_path, embedder) -> None:
    from tests.api.served_support import free_port

    client, _ = start_chat(tmp_path, embedder, None, llm="openai/test-model",
                           llm_api_base=f"http://127.0.0.1:{free_port()}/v1", llm_api_key="sk-test")
    with client:
        key = bearer(make_tenants(client)["acme"])
        r = client.post("/v1/chat", json={"user_id": "ann", "message": "hi", "max_tokens": 4}, headers=key)
    assert (r.status_code, r.json()["code"]) == (503, "llm_unavailable")
