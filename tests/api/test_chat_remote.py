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


def test_a_remote_model_is_sent_this_turns_memories_only(tmp_path, embedder) -> None:
    # the local engine's window carries earlier turns' memories because their KV is reused; a
    # remote model would be billed for them every turn, so its window is the retrieval budget
    with ScriptedServer() as server:
        client, _ = start_chat(tmp_path, embedder, None, llm="openai/test-model", llm_api_base=server.base_url,
                               llm_api_key="sk-test", chat_context_tokens=40, chat_window_tokens=1024)
        with client:
            key = bearer(make_tenants(client)["acme"])
            for text in ("I keep bees on the roof of my flat in Lisbon.", "My sister Eva is a doctor in Porto.",
                         "I am learning to play the cello on Tuesdays."):
                assert client.post("/v1/memories", json={"content": text, "user_id": "ann"}, headers=key).status_code == 201
            for question in ("Tell me about my bees.", "What does my sister do?", "Which instrument am I learning?"):
                server.push(Reply(content="Noted."))
                r = client.post("/v1/chat", json={"user_id": "ann", "message": question, "max_tokens": 8, "top_k": 1,
                                                  "remember": False}, headers=key)
                assert r.status_code == 200, r.text
    assert [m["content"] for m in r.json()["memories"]] == ["I am learning to play the cello on Tuesdays."]
    system = server.requests[-1]["messages"][0]["content"]
    assert "cello" in system and "bees" not in system and "Eva" not in system
