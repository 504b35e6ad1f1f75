"""LocalEngine on the real SmolLM2 GGUF: the Engine protocol end to end."""
from __future__ import annotations

import threading
from pathlib import Path

import jsonschema
import pytest
import torch

from inference.engine import Engine
from inference.errors import GenerationCancelled, InvalidParams, ModelLoadError
from inference.local_engine import LocalEngine
from inference.params import GenerationParams
from tests.inference import smollm

FRANCE = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    smollm.require_model()
    return smollm.engine("int4")


def test_is_an_engine(engine: LocalEngine) -> None:
    assert isinstance(engine, Engine)
    # KV computed in fp32 (CPUs without native bf16) is not the bf16 engine's: another id
    suffix = "-fp32compute" if engine.model.act_dtype == torch.float32 else ""
    assert engine.model_id == "local/SmolLM2-135M-Instruct.Q4_1/int4" + suffix


def test_greedy_chat_is_sensible(engine: LocalEngine) -> None:
    text = engine.generate(FRANCE, GenerationParams(max_tokens=32))
    assert "Paris" in text


def test_stream_equals_generate(engine: LocalEngine) -> None:
    params = GenerationParams(max_tokens=24)
    pieces = list(engine.stream([{"role": "user", "content": "Write a haiku about rain."}], params))
    assert len(pieces) > 1
    assert "".join(pieces) == engine.generate([{"role": "user", "content": "Write a haiku about rain."}], params)


def test_raw_prompt_stop_and_max_tokens(engine: LocalEngine) -> None:
    s = engine.stream_tokens("The three primary colours are red,", GenerationParams(max_tokens=5))
    text = "".join(s)
    assert s.finish_reason == "length" and len(s.token_ids) == 5 and text
    stopped = engine.generate("1, 2, 3, 4, 5, 6, 7,", GenerationParams(max_tokens=30, stop=("10",)))
    assert "10" not in stopped and "8" in stopped


def test_count_tokens(engine: LocalEngine) -> None:
    assert engine.count_tokens("hello world") == 2
    rendered = engine.template.render(FRANCE)
    assert engine.count_tokens(FRANCE) == len(engine.tokenizer.encode(rendered))


def test_cancel_raises_typed_error(engine: LocalEngine) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        engine.generate(FRANCE, GenerationParams(max_tokens=8), cancel=cancel)


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"}},
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
FACTS = {
    "type": "object",
    "properties": {
        "facts": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
    },
    "required": ["facts", "sentiment"],
}


def test_complete_json_extracts_and_validates(engine: LocalEngine) -> None:
    msgs = [{"role": "user", "content": "Extract the person: Alice is 31 and lives in Paris."}]
    assert engine.complete_json(msgs, PERSON) == {"name": "Alice", "age": 31, "city": "Paris"}


def test_complete_json_always_validates_even_when_sampling(engine: LocalEngine) -> None:
    msgs = [{"role": "system", "content": "You summarise."},
            {"role": "user", "content": "I loved the concert last night; the band played for three hours."}]
    for seed in range(3):
        params = GenerationParams(max_tokens=96, temperature=1.0, seed=seed)
        jsonschema.validate(engine.complete_json(msgs, FACTS, params), FACTS)


def test_caller_errors() -> None:
    with pytest.raises(InvalidParams):
        LocalEngine(quant="int2")
    with pytest.raises(ModelLoadError):
        LocalEngine(model_path=Path("/nonexistent/model.gguf"))


def test_second_chat_turn_reuses_the_first_turn_cache(engine: LocalEngine) -> None:
    params = GenerationParams(max_tokens=16)
    first = engine.stream_tokens(FRANCE, params)
    reply = "".join(first)
    turn2 = [*FRANCE, {"role": "assistant", "content": reply}, {"role": "user", "content": "And of Italy?"}]
    second = engine.stream_tokens(turn2, params)
    answer = "".join(second)
    assert second.reused_tokens >= engine.count_tokens(FRANCE)
    assert "Rome" in answer


def test_streams_are_serialised(engine: LocalEngine) -> None:
    params = GenerationParams(max_tokens=4)
    open_stream = iter(engine.stream("Once upon a time", params))
    next(open_stream)  # holds the engine
    with pytest.raises(InvalidParams):  # same thread: refused instead of deadlocking
        engine.generate("Hello", params)
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(engine.generate("Hello", params)))
    worker.start()
    worker.join(timeout=0.5)
    assert worker.is_alive()  # another thread waits for the open stream
    open_stream.close()  # closing the stream releases the engine
    worker.join(timeout=30)
    assert not worker.is_alive() and len(results) == 1
