"""Smoke tests of ``make bench`` on tiny sizes, so that it cannot rot.

Timings are never asserted (they depend on the machine); what is asserted is that
every row is measured, the implementations agree on the arithmetic, and stage 4's
backward pass visits each node once.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from utils import bench
from utils.benchmarks import graph, throughput

SIZES = (20, 12, 8, 3)
REPO = Path(__file__).resolve().parent.parent


def test_every_framework_trains_like_the_plain_loop():
    """Same weights, same batches: the same losses, step after step. So the
    table compares the same arithmetic."""
    batches, _ = throughput.make_batches(3, 8, SIZES[0], SIZES[-1])
    weights = throughput.init_weights(SIZES)
    plain = throughput.plain_numpy(weights, lr=0.1)
    steps = {
        "stage 2": throughput.stage2_step(weights, lr=0.1),
        "stage 2 with dX": throughput.stage2_step(weights, lr=0.1, input_grad=True),
        "stage 3": throughput.stage3_step(weights, lr=0.1),
        "stage 3 with dX": throughput.stage3_step(weights, lr=0.1, input_grad=True),
    }
    with contextlib.suppress(ImportError):  # stage 4 is optional here
        steps["stage 4"] = throughput.stage4_step(weights, lr=0.1)
        steps["stage 4 unfused"] = throughput.stage4_step(weights, lr=0.1, fused=False)
    for X, y in batches:
        expected = plain(X, y)
        for name, step in steps.items():
            assert step(X, y) == pytest.approx(expected, rel=1e-4), name


def test_stage1_trains_like_the_plain_loop_on_two_layers():
    batches, _ = throughput.make_batches(3, 8, SIZES[0], SIZES[-1])
    weights = throughput.init_weights((SIZES[0], SIZES[1], SIZES[-1]))
    plain = throughput.plain_numpy(weights, lr=0.1)
    stage1 = throughput.stage1_step(weights, lr=0.1)
    for X, y in batches:
        assert stage1(X, y) == pytest.approx(plain(X, y), rel=1e-4)


def test_throughput_table_on_a_tiny_model():
    impls, results, text = throughput.run(
        sizes=SIZES, batch_size=8, n_batches=2, repeats=2, threads=(1,)
    )
    (result,) = results
    assert not result.errors, result.errors
    available = {i.key for i in impls if i.make is not None}
    assert {"a", "a2", "b", "c", "d"} <= available
    assert set(result.samples_per_s) == available
    assert all(v > 0 and np.isfinite(v) for v in result.samples_per_s.values())
    table = throughput.format_table(impls, results)
    for label in ("(a) plain", "(b) stage 1", "(c) stage 2", "(d) stage 3", "(f)"):
        assert label in table
    assert "1.00x (a)" in table
    assert "20-12-8-3" in text
    # every row with another baseline has a median per-repeat ratio
    assert {"b", "c", "d"} <= set(result.ratios)
    assert "a" not in result.ratios
    assert all(v > 0 and np.isfinite(v) for v in result.ratios.values())
    assert "median of the per-repeat ratios" in text


def test_ratios_are_the_per_repeat_medians_not_the_best_times():
    """The table and the note print the median per-repeat ratio when measured
    (here faked: it differs from the ratio of the best samples/s)."""
    impls = [
        throughput.Impl("a", "(a) plain", None),
        throughput.Impl("c", "(c) stage 2", None),
    ]
    res = throughput.Result(1, {"a": 1000.0, "c": 500.0}, ratios={"c": 0.96})
    assert res.ratio("c", "a") == 0.96 and res.ratio("a", "a") == 1.0
    assert "0.96x (a)" in throughput.format_table(impls, [res])
    note = throughput.closing_note([res], load="load average 0.10 0.20 0.30")
    assert note == (
        "1 BLAS thread: stage 2 0.96x of the plain loop\nload average 0.10 0.20 0.30"
    )


def test_table_has_a_pytorch_column_and_a_closing_note_when_torch_ran():
    """PyTorch is not a dependency: its row is faked here, to check the columns."""
    impls = [
        throughput.Impl("a", "(a) plain", None),
        throughput.Impl("c", "(c) stage 2", None),
        throughput.Impl("g", "(g) cnn", None, baseline="g"),
        throughput.Impl("f", "(f) PyTorch (CPU)", None),
    ]
    results = [
        throughput.Result(n, {"a": 1000.0, "c": 970.0, "g": 50.0, "f": 800.0})
        for n in (1, 2)
    ]
    table = throughput.format_table(impls, results)
    assert "vs torch" in table and "1.21x" in table  # stage 2 / PyTorch
    assert "0.97x (a)" in table and "1.25x" in table  # plain / PyTorch
    cnn = next(line for line in table.splitlines() if line.startswith("(g)"))
    assert cnn.count("x") == 2 * 1  # its own ratio only: not the MLP of PyTorch
    note = throughput.closing_note(results)
    assert "1 BLAS thread: stage 2 0.97x (1.21x PyTorch)" in note
    assert "2 BLAS threads" in note
    no_torch = [throughput.Result(1, {"a": 1000.0, "c": 970.0})]
    assert "vs torch" not in throughput.format_table(impls[:2], no_torch)
    assert throughput.closing_note(no_torch) == (
        "1 BLAS thread: stage 2 0.97x of the plain loop"
    )


def test_stage4_backward_visits_each_node_once():
    pytest.importorskip("utils.reference.stage4")
    rows = graph.run((10, 100))
    assert [(r.shape, r.nodes) for r in rows] == [
        ("chain", 11),
        ("chain", 101),
        ("diamond", 10),
        ("diamond", 100),
    ]
    for r in rows:
        assert r.visits == r.nodes, r
        assert r.backward_us > 0 and r.forward_us > 0
    # linear: the Python calls per node of a backward pass do not grow with depth
    for small, large in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert large.calls_per_node <= 1.1 * small.calls_per_node, (small, large)
    assert "visits" in graph.format_table(rows)


def test_bench_quick_runs_end_to_end(capsys):
    assert bench.main(["--quick", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "Training throughput" in out
    assert "(a) plain fused NumPy loop" in out
    assert "backward pass on chains and diamonds" in out
    assert "stage 3 " in out and "zero_grad" in out  # the per-phase profile
    assert "load average" in out


@pytest.mark.notebooks
def test_notebook_and_check_timing(tmp_path):
    """A tiny notebook with one check call: its time and the call's are reported."""
    from utils.benchmarks import notebooks

    nb = tmp_path / "tiny.md"
    nb.write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n"
        "    format_name: myst\n    format_version: 0.13\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n"
        "  name: python3\n---\n\n"
        "```{code-cell} ipython3\nfrom utils.check import lab1 as check\n"
        "from utils.reference.stage1 import relu\ncheck.relu(relu)\n```\n"
    )
    timing = notebooks.time_notebook(nb)
    assert not timing.error, timing.error
    assert [(lab, name) for lab, name, _ in timing.checks] == [("lab1", "relu")]
    text = notebooks.format_timings([timing])
    assert "lab1: 1 check calls" in text
    assert "under 1 s" in text


def test_stage3_row_runs_the_default_model_on_the_fast_path(monkeypatch):
    """Row (d) is the model chapter 3 builds (no flag), run as train_epoch runs it:
    the first Linear skips dx for as long as the step lives (even after a garbage
    collection), and the dX row computes it."""
    import gc

    from utils.reference import stage3

    flags: dict[str, list[bool]] = {"fast": [], "dX": []}
    original = stage3.Linear.backward
    which = ["fast"]

    def spy(self, dout):
        if self.in_features == SIZES[0]:
            flags[which[0]].append(self.input_grad)
        return original(self, dout)

    monkeypatch.setattr(stage3.Linear, "backward", spy)
    (batch,), _ = throughput.make_batches(1, 8, SIZES[0], SIZES[-1])
    weights = throughput.init_weights(SIZES)
    fast = throughput.stage3_step(weights)
    slow = throughput.stage3_step(weights, input_grad=True)
    gc.collect()
    fast(*batch)
    which[0] = "dX"
    slow(*batch)
    assert flags == {"fast": [False], "dX": [True]}


def test_chapter5_recipe_runs_are_those_the_chapter_states():
    """``python -m utils.benchmarks.cnn_recipe`` repeats chapter 5's validation
    runs: every setting the chapter names is among them, and one run trains (here a
    short one on the 8x8 digits) and returns an accuracy per epoch."""
    from utils import data
    from utils.benchmarks import cnn_recipe

    text = (REPO / "book" / "05-convolutions.md").read_text()
    assert "python -m utils.benchmarks.cnn_recipe" in text
    runs = set(cnn_recipe.RUNS)
    for seed in (0, 3, 4, 5):  # batches of 64 against 128, from four seeds
        assert {cnn_recipe.Run(seed), cnn_recipe.Run(seed, 8, 64, 2e-3)} <= runs
    for epochs in (4, 6, 10):
        assert cnn_recipe.Run(3, num_epochs=epochs) in runs
    ds = data.load_digits().with_validation(0.2)
    run = cnn_recipe.Run(0, num_epochs=2, batch_size=64, max_shift=0)
    val_acc, seconds = cnn_recipe.train(run, ds)
    assert len(val_acc) == 2 and all(0 <= a <= 1 for a in val_acc) and seconds > 0
