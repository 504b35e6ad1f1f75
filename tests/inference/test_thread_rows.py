"""From how many rows a forward wakes the prefill threads: the probe, the memo, the engine setting."""
from __future__ import annotations

import time

import pytest
import torch

from inference import machine_memo, thread_rows
from inference.errors import InvalidParams
from inference.model import TINY_CONFIG, random_model
from tests.inference import smollm


def _sleeping_probe(seen: list[int]):
    """1 thread: 0.2 ms + 0.01 ms/row; 2 threads: 2 ms + 0.002 ms/row -> equal at 225 rows."""
    def probe(rows: int) -> None:
        n = torch.get_num_threads()
        seen.append(n)
        time.sleep((0.2 + 0.01 * rows) / 1000 if n == 1 else (2.0 + 0.002 * rows) / 1000)
    return probe


def test_the_probe_finds_where_the_second_thread_pays(monkeypatch):
    monkeypatch.setattr(machine_memo, "_known", {})
    saved, seen = torch.get_num_threads(), []
    rows = thread_rows.wide_from_rows((2, 1), _sleeping_probe(seen), ("sleep",))
    assert 150 <= rows <= 320  # 225 up to the sleeps' jitter
    assert set(seen) == {1, 2} and torch.get_num_threads() == saved


def test_a_later_process_reads_the_thread_crossover_instead_of_probing(tmp_path, monkeypatch):
    memo = tmp_path / "prefill_rows.json"
    monkeypatch.setattr(machine_memo, "_known", {})
    monkeypatch.setattr(machine_memo, "_quiet", lambda: True)
    rows = thread_rows.wide_from_rows((2, 1), _sleeping_probe([]), ("sleep",), memo)
    monkeypatch.setattr(machine_memo, "_known", {})  # a new process: only the file remains

    def no_probe(rows: int) -> None:
        raise AssertionError("the probe ran although the file holds this machine's measurement")

    assert thread_rows.wide_from_rows((2, 1), no_probe, ("sleep",), memo) == rows
    # another thread plan is another measurement
    assert thread_rows.wide_from_rows((4, 1), _sleeping_probe([]), ("sleep",), memo) >= machine_memo.MIN_ROWS


def test_a_model_measures_its_own_layer_and_switches_there(monkeypatch):
    monkeypatch.setattr(machine_memo, "_known", {})
    model, saved = random_model(TINY_CONFIG, "int4"), torch.get_num_threads()
    try:
        model.use_threads(2, 1)
        rows = model.use_wide_rows()
        assert machine_memo.MIN_ROWS <= rows <= machine_memo.MAX_ROWS and model.wide_from_rows == rows
        assert model.use_wide_rows(8) == 8  # an explicit setting wins
        cache = model.new_cache(16)
        model(torch.arange(1, 9)[None], 0, cache)
        assert torch.get_num_threads() == 2
        model(torch.arange(1, 8)[None], 0, cache)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)


def test_one_thread_plan_needs_no_probe():
    model = random_model(TINY_CONFIG, "int4")
    model.use_threads(1, 1)
    before = model.wide_from_rows
    assert model.use_wide_rows() == before  # nothing to choose between


def test_the_engine_takes_or_measures_the_thread_crossover():
    smollm.require_model()
    from inference.local_engine import LocalEngine

    engine = LocalEngine(quant="int4", wide_from_rows=123, prefix_cache_blocks=0)
    assert engine.wide_from_rows == 123 and engine.model.wide_from_rows == 123
    measured = LocalEngine(quant="int4", prefix_cache_blocks=0).wide_from_rows
    assert machine_memo.MIN_ROWS <= measured <= machine_memo.MAX_ROWS
    with pytest.raises(InvalidParams):
        LocalEngine(quant="int4", wide_from_rows=0)
