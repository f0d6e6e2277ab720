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


# -------------------------------------------- labs 3 and 4: loops, layers, training
def _blamed(result, piece: str) -> None:
    """``result`` failed, and its message and hint name ``piece`` first."""
    assert result.status == FAILED, result.text()
    assert _first_line(result).startswith(f"{piece} has not passed its own check")
    assert result.hint.startswith(f"fix {piece} first"), result.hint


def _lab3_wrong(why: str):
    from tests.catalogue.lab3 import WRONG

    return next(w.impl for w in WRONG if w.why == why)


def test_lab3_training_fails_while_a_linear_it_uses_has_failed():
    """A Linear whose second backward is wrong: training cannot show it (one backward
    per forward), so training would pass beside `linear ❌`."""
    from tests.catalogue import lab3 as cat3
    from utils.check import lab3

    wrong = _lab3_wrong("cache transposed in backward")
    epoch = cat3.epoch_using(cat3.lab_train_epoch, Linear=wrong)
    assert lab3.training(epoch).status == PASSED  # on its own, training passes
    assert lab3.linear(wrong).status == FAILED
    result = lab3.training(epoch)
    _blamed(result, "linear")
    assert result.cases_passed == 0
    assert not lab3.LAB.ready("training")


def test_lab3_training_keeps_what_it_found_below_the_blame():
    from tests.catalogue import lab3 as cat3
    from utils.check import lab3

    wrong = _lab3_wrong("db mean")  # a wrong gradient: training fails on its own too
    epoch = cat3.epoch_using(cat3.lab_train_epoch, Linear=wrong)
    assert lab3.linear(wrong).status == FAILED
    result = lab3.training(epoch)
    _blamed(result, "linear")
    assert "the mean loss of epoch 1" in result.message  # what training found, kept
    after = result.hint.split("if training still fails afterwards: ", 1)[1]
    assert "is the first piece" in after, result.hint


def test_lab3_training_unchanged_once_the_piece_is_fixed():
    from tests.catalogue import lab3 as cat3
    from utils.check import lab3
    from utils.reference import stage3

    epoch = cat3.epoch_using(cat3.lab_train_epoch, Linear=cat3.LinearAddsIntoGrad)
    assert lab3.sgd(_lab3_wrong("plus")).status == FAILED
    _blamed(lab3.training(epoch), "sgd")
    assert lab3.sgd(stage3.SGD).status == PASSED
    assert lab3.training(epoch).status == PASSED
    # weight decay and dropout are not used by the training run
    assert lab3.dropout(_lab3_wrong("no 1/(1-p)")).status == FAILED
    assert lab3.training(epoch).status == PASSED


_LAB3_OWN_SGD = """
def train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng):
    optimizer = SGD(model.parameters(), lr=0.5, momentum=0.5)  # its own optimizer
    total_loss, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Xb)
        loss = loss_fn(logits, yb)
        model.backward(loss_fn.backward())
        optimizer.step()
        total_loss += loss * len(yb)
        correct += int(np.sum(logits.argmax(axis=1) == yb))
    return total_loss / len(X), correct / len(X)
"""


def test_lab3_train_epoch_names_a_failed_class_it_builds_itself():
    from tests.catalogue import lab3 as cat3
    from utils.check import lab3

    wrong = _lab3_wrong("plus")
    space = {"np": np, "data": cat3.data, "SGD": wrong}
    exec(_LAB3_OWN_SGD, space)  # noqa: S102 - a notebook's cell
    assert lab3.sgd(wrong).status == FAILED
    _blamed(lab3.train_epoch(space["train_epoch"]), "sgd")


def test_lab3_train_epoch_runs_on_the_course_pieces_so_blames_none():
    """The check hands train_epoch the course's model, loss and optimizer: a failed
    Linear or SGD of the notebook cannot be the cause."""
    from tests.catalogue import lab3 as cat3
    from utils.check import lab3

    assert lab3.linear(_lab3_wrong("db mean")).status == FAILED
    assert lab3.sgd(_lab3_wrong("plus")).status == FAILED
    epoch = cat3.epoch_using(cat3.lab_train_epoch, SGD=_lab3_wrong("plus"))
    assert lab3.train_epoch(epoch).status == PASSED
    wrong = cat3.epoch_using(_lab3_wrong_epoch())
    result = lab3.train_epoch(wrong)
    assert result.status == FAILED
    assert "has not passed its own check" not in result.message


def _lab3_wrong_epoch():
    from tests.catalogue.lab3 import WRONG

    return next(w.impl for w in WRONG if w.exercise == "train_epoch")


_LAB4_LINEAR = """
class Linear(Base):
    def forward(self, x):
        if self.W is None:
            self.reset_parameters(x.shape[1])
        return MatMul.apply(x, self.W) + self.b  # the lab's MatMul, by its name
"""

_LAB4_CROSS_ENTROPY = """
class CrossEntropy(Function):
    @staticmethod
    def forward(ctx, logits, y):
        N = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = Exp.forward(ctx, shifted)  # the lab's Exp, by its name
        log_probs = shifted - np.log(e.sum(axis=1, keepdims=True))
        ctx.save_for_backward(np.exp(log_probs), y)
        return np.asarray(-log_probs[np.arange(N), y].mean())

    @staticmethod
    def backward(ctx, grad_output):
        probs, y = ctx.saved_tensors
        N = probs.shape[0]
        dlogits = probs.copy()
        dlogits[np.arange(N), y] -= 1
        return grad_output * dlogits / N
"""

_LAB4_EPOCH = """
def cross_entropy(logits, y):
    return CrossEntropy.apply(logits, y=np.asarray(y))


def train_epoch(model, loss_fn, optimizer, X, y, batch_size, rng):
    total_loss, correct = 0.0, 0
    for Xb, yb in data.iterate_minibatches(X, y, batch_size, rng=rng):
        optimizer.zero_grad()
        logits = model(Tensor(Xb))
        loss = cross_entropy(logits, yb)  # the notebook's loss, not loss_fn
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(yb)
        correct += int(np.sum(logits.data.argmax(axis=1) == yb))
    return total_loss / len(X), correct / len(X)
"""


def _lab4_space(source: str, **names):
    from utils import data
    from utils.check import lab4
    from utils.reference import stage4

    space = {
        "np": np,
        "data": data,
        "Function": stage4.Function,
        "Tensor": stage4.Tensor,
        "Base": lab4.LabLinear,
        "MatMul": stage4.MatMul,
        "Exp": stage4.Exp,
        "CrossEntropy": stage4.CrossEntropy,
        **names,
    }
    exec(source, space)  # noqa: S102 - a notebook's cell
    return space


def test_lab4_linear_names_a_failed_matmul_it_calls_first():
    from tests.catalogue.lab4 import MatMulNoTranspose
    from utils.check import lab4

    space = _lab4_space(_LAB4_LINEAR, MatMul=MatMulNoTranspose)
    assert lab4.matmul(MatMulNoTranspose).status == FAILED
    _blamed(lab4.linear(space["Linear"]), "matmul")
    # x @ W goes through the course's MatMul in this check: no blame
    assert lab4.linear(lab4.LabLinear).status == PASSED


def test_lab4_cross_entropy_names_a_failed_exp_it_calls_first():
    from tests.catalogue.lab4 import ExpFloat64
    from utils.check import lab4
    from utils.reference import stage4

    space = _lab4_space(_LAB4_CROSS_ENTROPY, Exp=ExpFloat64)
    assert lab4.exp(ExpFloat64).status == FAILED
    _blamed(lab4.cross_entropy(space["CrossEntropy"]), "exp")
    assert lab4.cross_entropy(stage4.CrossEntropy).status == PASSED  # names no Exp
    honest = _lab4_space(_LAB4_CROSS_ENTROPY)  # the same code, on a right Exp
    assert lab4.cross_entropy(honest["CrossEntropy"]).status == PASSED


def test_lab4_train_epoch_names_a_failed_loss_it_calls_first():
    from tests.catalogue.lab4 import CENoN
    from utils.check import lab4
    from utils.reference import stage4

    space = _lab4_space(_LAB4_EPOCH, CrossEntropy=CENoN)
    assert lab4.cross_entropy(CENoN).status == FAILED
    _blamed(lab4.train_epoch(space["train_epoch"]), "cross_entropy")
    assert lab4.train_epoch(stage4.train_epoch).status == PASSED  # loss_fn: no blame
    honest = _lab4_space(_LAB4_EPOCH)
    assert lab4.train_epoch(honest["train_epoch"]).status == PASSED


def test_lab4_training_fails_while_a_piece_it_uses_has_failed():
    """A relu whose mask is x >= 0: training never reaches x = 0, so it would pass
    beside `relu ❌`."""
    from tests.catalogue import lab4 as cat4
    from tests.catalogue.lab4 import ReluGe
    from utils.check import lab4
    from utils.reference import stage4

    epoch = cat4.lab_using(Relu=ReluGe)
    assert lab4.training(epoch).status == PASSED  # on its own, training passes
    assert lab4.relu(ReluGe).status == FAILED
    result = lab4.training(epoch)
    _blamed(result, "relu")
    assert result.cases_passed == 0
    lab4.relu(stage4.Relu)
    assert lab4.training(epoch).status == PASSED
    assert lab4.exp(cat4.ExpFloat64).status == FAILED  # the model uses no Exp
    assert lab4.training(epoch).status == PASSED
