"""A check that fails because an earlier exercise it calls failed names that one
first (issue 17: backward failing because of a float64 relu_grad)."""

from __future__ import annotations

import numpy as np

from utils.check import lab1
from utils.check.core import FAILED, PASSED
from utils.reference import stage1 as ref

_SOURCE = """
def relu_grad(z):
    return (z > 0).astype(np.float64)


def backward(y, params, cache):
    dlogits = softmax_cross_entropy_grad(cache["probs"], y)
    dh1, dW2, db2 = linear_backward(dlogits, cache["h1"], params["W2"])
    dz1 = dh1 * relu_grad(cache["z1"])
    _, dW1, db1 = linear_backward(dz1, cache["X"], params["W1"])
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
"""


def _notebook() -> dict:
    space = {
        "np": np,
        "softmax_cross_entropy_grad": ref.softmax_cross_entropy_grad,
        "linear_backward": ref.linear_backward,
    }
    exec(_SOURCE, space)  # noqa: S102 - a notebook's cells, as a student wrote them
    return space


def test_backward_names_the_failed_relu_grad_first():
    nb = _notebook()
    assert lab1.relu_grad(nb["relu_grad"]).status == FAILED
    result = lab1.backward(nb["backward"])
    assert result.status == FAILED
    first = result.message.splitlines()[0]
    assert first.startswith("relu_grad has not passed its own check"), first
    assert "float64" in first and "fix relu_grad first" in first
    assert result.hint.startswith("fix relu_grad first")
    assert not lab1.LAB.ready("backward", "train_step", "training")


def test_no_blame_when_the_piece_is_not_called():
    nb = _notebook()
    lab1.relu_grad(nb["relu_grad"])  # failed, but the reference backward is checked
    assert lab1.backward(ref.backward).status == PASSED
    lab1.relu_grad(ref.relu_grad)


def test_training_fails_while_a_piece_it_uses_has_failed():
    """Issue 17: `backward ❌` beside `training ✅` in lab 1's summary."""
    nb = _notebook()
    assert lab1.relu_grad(nb["relu_grad"]).status == FAILED
    result = lab1.training(ref.train_step)  # training itself would pass
    assert result.status == FAILED
    assert result.message.startswith("relu_grad has not passed its own check")
    assert result.hint.startswith("fix relu_grad first")
    lab1.relu_grad(ref.relu_grad)  # fixed: training passes again
    assert lab1.training(ref.train_step).status == PASSED


# ------------------------------------------------------------------ labs 2 to 4
def _first_line(result) -> str:
    return result.message.splitlines()[0]


def test_lab2_train_step_names_a_failed_network_forward_first():
    from tests.catalogue.lab2 import NetForwardReversed
    from utils.check import lab2

    assert lab2.network_forward(NetForwardReversed).status == FAILED
    result = lab2.train_step(NetForwardReversed)  # its train_step calls forward
    assert result.status == FAILED
    assert _first_line(result).startswith("network_forward has not passed its own")
    assert result.hint.startswith("fix network_forward first")
    lab2.network_forward(lab2.LAB.references["network_forward"])


_LAB3_SOURCE = """
class Sequential(Reference, Module):
    def __repr__(self):
        return Module.__repr__(self)
"""


def test_lab3_sequential_names_a_failed_module_first():
    from tests.catalogue.lab3 import WRONG
    from utils.check import lab3
    from utils.reference import stage3

    wrong = next(w.impl for w in WRONG if w.why == "setattr recursion")
    space = {"Reference": stage3.Sequential, "Module": wrong}
    exec(_LAB3_SOURCE, space)  # noqa: S102 - a notebook's cell
    assert lab3.module(wrong).status == FAILED
    result = lab3.sequential(space["Sequential"])
    assert result.status == FAILED
    assert _first_line(result).startswith("module has not passed its own check")
    lab3.module(stage3.Module)
    assert lab3.sequential(stage3.Sequential).status == PASSED  # no blame: passes


_LAB4_SOURCE = """
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        a_shape, b_shape = ctx.shapes
        return unbroadcast(grad_output, a_shape), unbroadcast(grad_output, b_shape)
"""


def test_lab4_add_names_a_failed_unbroadcast_first():
    from tests.catalogue.lab4 import ub_no_keepdims
    from utils.check import lab4
    from utils.reference import stage4

    space = {"Function": stage4.Function, "unbroadcast": ub_no_keepdims}
    exec(_LAB4_SOURCE, space)  # noqa: S102 - a notebook's cell
    assert lab4.unbroadcast(ub_no_keepdims).status == FAILED
    result = lab4.add(space["Add"])
    assert result.status == FAILED
    assert _first_line(result).startswith("unbroadcast has not passed its own check")
    assert "fix unbroadcast first" in result.hint
    lab4.unbroadcast(stage4.unbroadcast)
