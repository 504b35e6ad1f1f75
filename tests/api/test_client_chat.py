"""``Client.chat`` against the real app with the real chat engine (SmolLM2), in-process."""
import pytest

from api.client import Client
from api.errors import ValidationFailed
from tests.api.chat_support import chat_rest, engine  # noqa: F401  (fixtures)


def test_chat_through_the_sdk_uses_and_writes_memory(chat_rest):
    mem = Client(api_key=chat_rest.keys["acme"], http=chat_rest.client)
    [note] = mem.add("I live in Lisbon, near the river.", user_id="sdk_chat")
    out = mem.chat("Which city do I live in?", user_id="sdk_chat", max_tokens=24)
    assert out["reply"].strip() and note["id"] in [m["id"] for m in out["memories"]]
    assert len(out["written"]) == 2
    quiet = mem.chat("And which river?", user_id="sdk_chat", max_tokens=8, remember=False,
                     history=[{"role": "user", "content": "Which city do I live in?"},
                              {"role": "assistant", "content": out["reply"]}])
    assert quiet["written"] == []
    with pytest.raises(ValidationFailed):
        mem.chat("", user_id="sdk_chat")
