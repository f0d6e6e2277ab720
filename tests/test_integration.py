"""The integration-check helpers (utils/check/integration.py) and the promise of
issue 14: "all passed" predicts that the lab's training works."""

from __future__ import annotations

import types

import numpy as np
import pytest

from utils.check import core, integration, lab1, lab2, lab3
from utils.reference import stage1, stage2, stage3


def test_find_global_reads_a_function_s_notebook_namespace():
    def mine(X):
        return X

    f = types.FunctionType(mine.__code__, {"forward": mine, "n": 3}, "train_step")
    assert integration.find_global(f, "forward", None) is mine
    assert integration.find_global(f, "n", "default") == "default"  # not callable
    assert integration.find_global(f, "missing", stage1.forward) is stage1.forward


def test_find_global_reads_a_class_s_methods_namespaces():
    class Net(stage2.Network):  # methods defined here see this module's globals
        def forward(self, X):
            return super().forward(X)

    assert integration.find_global(Net, "stage2", None, types.ModuleType) is stage2
    assert integration.find_global(Net, "Linear", None, type) is stage2.Linear


def _run(pieces, x):
    return {"after a": pieces["a"](x), "after b": pieces["b"](pieces["a"](x))}


def test_first_divergent_piece_is_the_first_in_the_lab_s_order():
    reference = {"a": lambda x: x + 1, "b": lambda x: 2 * x}
    student = {"a": lambda x: x + 2, "b": lambda x: 3 * x}  # both wrong
    case = core.Case("x = 1", (np.float32(1.0),))
    expected = _run(reference, np.float32(1.0))
    found = integration.first_divergent_piece(
        ("a", "b"), student, reference, case, _run, expected
    )
    assert found is not None and found[0] == "a"
    found = integration.first_divergent_piece(
        ("b", "a"), student, reference, case, _run, expected
    )
    assert found is not None and found[0] == "b"
    same = {"a": reference["a"], "b": lambda x: x * 2}
    assert (
        integration.first_divergent_piece(
            ("a", "b"), same, reference, case, _run, expected
        )
        is None
    )


def test_a_piece_that_raises_is_named_and_the_core_shows_the_attached_hint():
    reference = {"a": lambda x: x + 1, "b": lambda x: 2 * x}

    def broken(x):
        raise ValueError("no")

    student_entry = object()

    def discover(impl):  # as in the labs: a dict of pieces is already resolved
        if isinstance(impl, dict):
            return impl
        return reference if impl is not student_entry else {**reference, "b": broken}

    def run(impl, x):
        return _run(discover(impl), x)

    wrapped = integration.explain_errors(
        run, student_entry, ("a", "b"), discover, "ref", {"b": "Look at b."}
    )
    with pytest.raises(ValueError) as info:
        wrapped(student_entry, np.float32(1.0))
    hint = core._exception_hint(info.value)
    assert hint.startswith("b is the first piece") and hint.endswith("Look at b.")
    assert wrapped("ref", np.float32(1.0)) == _run(reference, np.float32(1.0))


@pytest.mark.parametrize(
    ("lab", "entry"),
    [
        (lab1, stage1.train_step),
        (lab2, stage2.Network),
        (lab3, stage3.train_epoch),
    ],
    ids=["lab1", "lab2", "lab3"],
)
def test_every_lab_ends_with_an_integration_check_in_its_summary(lab, entry):
    assert lab.LAB.exercises[-1] == "training"
    result = lab.training(entry)
    assert result.status == core.PASSED, result.text()


class _AccumulatingLinear(stage2.Linear):
    """Issue 14's example: stage 2 never zeroes dW, so += sums every batch."""

    def backward(self, dout):
        self.dW += self.x.T @ dout
        self.db += dout.sum(axis=0)
        return dout @ self.W.T


def test_the_accumulating_linear_of_issue_14_fails_its_own_check_and_training():
    assert lab2.linear_backward(_AccumulatingLinear).status == core.FAILED

    class Network(stage2.Network):
        def __init__(self, layer_sizes, activation="relu", *, init="he", seed=0):
            super().__init__(layer_sizes, activation, init=init, seed=seed)
            self.layers = [
                _AccumulatingLinear(
                    la.W.shape[0], la.W.shape[1], init=lambda i, o, r, W=la.W: W.copy()
                )
                if isinstance(la, stage2.Linear)
                else la
                for la in self.layers
            ]

    result = lab2.training(Network)
    assert result.status == core.FAILED
    assert "Linear is the first piece" in result.hint


def test_a_loss_of_shape_1_fails_its_own_check():
    def cross_entropy(probs, y):
        p = probs[np.arange(len(y)), y]
        return -np.mean(np.log(np.maximum(p, 1e-12)), keepdims=True)

    result = lab1.cross_entropy(cross_entropy)
    assert result.status == core.FAILED and "single number" in result.message
