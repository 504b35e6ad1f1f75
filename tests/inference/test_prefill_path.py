"""Where prefill leaves the packed kernel: the line crossing, the measured probe, the engine setting."""
from __future__ import annotations

import json

import pytest
import torch

from inference import linear, machine_memo, prefill_path
from inference.errors import InvalidParams
from tests.inference import smollm


def test_the_crossing_of_two_cost_lines():
    # packed: 1 ms + 0.02 ms/row; dequantize: 5 ms + 0.004 ms/row -> equal at 250 rows
    assert machine_memo.crossing((128, 512), [3.56, 11.24], [5.512, 7.048]) == 250


def test_dequantizing_that_never_catches_up_means_never_switch():
    assert machine_memo.crossing((128, 512), [1.0, 2.0], [5.0, 9.0]) == machine_memo.MAX_ROWS


def test_a_crossing_below_the_minimum_is_clamped():
    assert machine_memo.crossing((128, 512), [10.0, 40.0], [1.0, 2.0]) == machine_memo.MIN_ROWS


@pytest.mark.parametrize("quant_mode", ["int4", "int8"])
def test_the_probe_measures_a_real_layer_once(quant_mode):
    g = torch.Generator().manual_seed(1)
    layer = [linear.linear_from_float(torch.randn(n, 576, generator=g) / 24, quant_mode) for n in (960, 3072)]
    rows = prefill_path.crossover_rows(layer)
    assert machine_memo.MIN_ROWS <= rows <= machine_memo.MAX_ROWS
    measured = dict(machine_memo._known)  # noqa: SLF001
    assert prefill_path.crossover_rows(layer) == rows and machine_memo._known == measured  # noqa: SLF001


def _layer():
    g = torch.Generator().manual_seed(2)
    return [linear.linear_from_float(torch.randn(n, 576, generator=g) / 24, "int4") for n in (960, 576)]


def test_a_later_process_reads_the_measurement_instead_of_probing(tmp_path, monkeypatch):
    memo = tmp_path / "machine" / "prefill_rows.json"
    monkeypatch.setattr(machine_memo, "_known", {})
    monkeypatch.setattr(machine_memo, "_quiet", lambda: True)
    rows = prefill_path.crossover_rows(_layer(), memo)
    assert list(json.loads(memo.read_text()).values()) == [rows]
    monkeypatch.setattr(machine_memo, "_known", {})  # a new process: only the file remains

    def no_probe(layer):
        raise AssertionError("the probe ran although the file holds this machine's measurement")

    monkeypatch.setattr(prefill_path, "_measure", no_probe)
    assert prefill_path.crossover_rows(_layer(), memo) == rows


def test_an_unreadable_memo_means_measuring_again(tmp_path, monkeypatch):
    memo = tmp_path / "prefill_rows.json"
    memo.write_text("{not json")
    monkeypatch.setattr(machine_memo, "_known", {})
    monkeypatch.setattr(machine_memo, "_quiet", lambda: True)
    monkeypatch.setattr(prefill_path, "_measure", lambda layer: 77)
    assert prefill_path.crossover_rows(_layer(), memo) == 77
    assert list(json.loads(memo.read_text()).values()) == [77]


def test_a_measurement_on_a_busy_machine_is_not_kept(tmp_path, monkeypatch):
    memo = tmp_path / "prefill_rows.json"
    monkeypatch.setattr(machine_memo, "_known", {})
    monkeypatch.setattr(machine_memo, "_quiet", lambda: False)
    monkeypatch.setattr(prefill_path, "_measure", lambda layer: 77)
    assert prefill_path.crossover_rows(_layer(), memo) == 77 and not memo.exists()


def test_the_engine_sets_the_threshold_on_every_block_linear():
    smollm.require_model()
    from inference.local_engine import LocalEngine

    engine = LocalEngine(quant="int4", prefill_min_rows=300, prefix_cache_blocks=0)
    packed = [m for m in engine.model.blocks.modules() if isinstance(m, linear.Int4Linear)]
    assert engine.prefill_min_rows == 300 and packed and all(m.prefill_min_rows == 300 for m in packed)
    measured = engine.model.use_prefill_rows(None)
    assert machine_memo.MIN_ROWS <= measured <= machine_memo.MAX_ROWS
    assert all(m.prefill_min_rows == measured for m in packed)
    with pytest.raises(InvalidParams):
        LocalEngine(quant="int4", prefill_min_rows=0)


def test_both_paths_give_the_same_next_token():
    smollm.require_model()
    engine = smollm.engine("int4")
    ids = torch.tensor([engine.tokenizer.encode(" ".join(smollm.hotpot_text(3)))[:200]])
    logits = {}
    for rows in (1, 10_000):  # 200 rows: dequantize + bf16 matmul, then the packed kernel
        engine.model.use_prefill_rows(rows)
        logits[rows] = engine.model(ids, 0, engine.model.new_cache(256))[0, -1]
    engine.model.use_prefill_rows(None)
    assert int(logits[1].argmax()) == int(logits[10_000].argmax())
    assert (logits[1] - logits[10_000]).abs().max() < 1.0  # bf16 rounding, logits span ~±40
