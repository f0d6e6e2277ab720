"""Checks for lab 2: a network of layers.

Each function takes the student's class or function, runs it and
:mod:`utils.reference.stage2` on the same seeded cases (a batch of one, zeros and
negative inputs, inputs of ±1000 for the activations and the softmax) and returns a
:class:`~utils.check.core.CheckResult`.

A layer is checked by building it with fixed weights, calling ``forward`` and then
``backward``, and comparing the outputs, the gradients and the warnings NumPy
raised (an ``exp`` that overflows is a mistake even when the result is right).
The network checks put reference layers into the student's ``Network``, so that
``Network.forward`` is checked on its own, whatever the state of the student's
layers. ``train_epoch`` is checked with a stand-in network that records what it
is given (and runs it again with the same seed, and another, to see that the order
comes from ``rng``). A ``Linear`` also goes through two batches in a row: stage 2
never zeroes the gradients, so the second batch's must replace the first's.

The last check, :func:`training`, is the integration check: networks built by the
student's ``Network`` (with the notebook's layers) trained batch after batch (see
:mod:`utils.check.integration`).

Usage in the lab::

    from utils.check import lab2 as check
    check.linear_forward(Linear)
    ...
    check.training(Network)
    check.summary()
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from utils.check.core import (
    FAILED,
    NOT_IMPLEMENTED,
    PASSED,
    SECOND_DX,
    Case,
    CheckResult,
    Inputs,
    Lab,
    Mistake,
    Summary,
    array_refs,
    backward_again,
    describe_exception,
    finish,
    require_in_place,
    run_check,
    second_dx_hint,
)
from utils.check.integration import (
    batch_slices,
    copy_params,
    diverged_hint,
    explain_errors,
)
from utils.check.prereq import blames
from utils.reference import stage2 as ref

LAB = Lab(
    "Lab 2: a network of layers",
    [
        "linear_forward",
        "linear_backward",
        "relu",
        "sigmoid",
        "tanh",
        "softmax",
        "softmax_cross_entropy",
        "mse",
        "zeros",
        "glorot_uniform",
        "he_normal",
        "network_forward",
        "network_backward",
        "network_update",
        "train_step",
        "train_epoch",
        "training",
    ],
    references={
        "linear_forward": ref.Linear,
        "linear_backward": ref.Linear,
        "relu": ref.ReLU,
        "sigmoid": ref.Sigmoid,
        "tanh": ref.Tanh,
        "softmax": ref.Softmax,
        "softmax_cross_entropy": ref.SoftmaxCrossEntropy,
        "mse": ref.MSE,
        "zeros": ref.zeros,
        "glorot_uniform": ref.glorot_uniform,
        "he_normal": ref.he_normal,
        "network_forward": ref.Network,
        "network_backward": ref.Network,
        "network_update": ref.Network,
        "train_step": ref.Network,
        "train_epoch": ref.train_epoch,
    },
    module=__name__,
)

WARNINGS = "the warnings NumPy raised"  # the key under which a layer's warnings appear


_INPUTS = Inputs(base_seed=2000)
_rng, _randn, _labels = _INPUTS.rng, _INPUTS.randn, _INPUTS.labels


@contextmanager
def _fp_warnings() -> Iterator[list[str]]:
    """Collect NumPy's overflow, invalid-value and divide-by-zero warnings as text.

    Underflow (``exp(-1000) = 0``) is harmless and stays silent.
    """
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(over="warn", invalid="warn", divide="warn", under="ignore"):
            yield found
    found.extend(
        sorted(
            {str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)}
        )
    )


def _warning_text(found: list[str]) -> str:
    return "; ".join(found) if found else "none"


def _overflow_hint(text: str) -> Callable[[object, object, Case], str]:
    """A diagnoser: ``text`` when NumPy warned of an overflow in the student's run."""

    def hint(got, expected, case) -> str:
        if isinstance(got, dict) and "overflow" in str(got.get(WARNINGS, "")):
            return text
        return ""

    return hint


# --------------------------------------------------------------------------- Linear
def _make_linear(cls, W: np.ndarray, b: np.ndarray):
    """The class ``cls`` built with the weights ``W`` and the bias ``b``."""
    layer = cls(W.shape[0], W.shape[1], init=lambda fan_in, fan_out, rng: W.copy())
    layer.b = b.copy()
    return layer


def _linear_cases() -> list[Case]:
    """(x, W, b, dout); the first is square so that a transposed W shows in values."""
    cases = []
    for name, (N, n_in, n_out), seed in [
        ("N=5, in=4, out=4", (5, 4, 4), 0),
        ("N=6, in=4, out=3", (6, 4, 3), 1),
        ("a batch of one, in=5, out=2", (1, 5, 2), 2),
        ("N=7, in=3, out=5", (7, 3, 5), 3),
    ]:
        x = _randn((N, n_in), seed)
        W = _randn((n_in, n_out), seed + 10)
        b = _randn((n_out,), seed + 20)
        dout = _randn((N, n_out), seed + 30)
        cases.append(Case(name, (x, W, b, dout)))
    x = _randn((3, 6), 4).T  # (6, 3), a transposed array: not contiguous in memory
    W, b = _randn((3, 2), 14), _randn((2,), 24)
    cases.append(
        Case("N=6, in=3, out=2, x not contiguous", (x, W, b, _randn((6, 2), 34)))
    )
    return cases


def _run_linear_forward(cls, x, W, b, dout):
    layer = _make_linear(cls, W, b)
    out = layer.forward(x)
    return {
        "output": out,
        "what self.x holds": _what(getattr(layer, "x", None), x, out),
    }


def _what(cached, x, out) -> str:
    """Which array a layer cached, in words."""
    if cached is None:
        return "nothing (None)"
    for name, array in [("the input x", x), ("the output", out)]:
        try:
            if np.shape(cached) == np.shape(array) and np.array_equal(cached, array):
                return name
        except (TypeError, ValueError):
            pass
    return "something else"


def _run_linear_backward(cls, x, W, b, dout):
    layer = _make_linear(cls, W, b)
    layer.forward(x)
    dx = _copied(layer.backward(dout))
    dW, db = _copied(layer.dW), _copied(layer.db)
    again = backward_again(layer, dout)  # the cache read twice: never edited in place
    return {"dx": dx, "dW": dW, "db": db, SECOND_DX: again}


def _run_linear_twice(cls, x, W, b, dout):
    """Two batches in a row through one layer, as in training: the gradients after
    the second backward must be the second batch's only (stage 2 never zeroes them),
    and the layer must keep working on the arrays it holds."""
    layer = _make_linear(cls, W, b)
    layer.forward(x[::-1] * 2)  # a first batch, another one
    layer.backward(dout[::-1] * 3)
    layer.forward(x)
    dx = layer.backward(dout)
    return {"dx": dx, "dW after the second batch": layer.dW, "db": layer.db}


class _LinearMistake(ref.Linear):
    """The reference ``Linear`` with one thing changed (a model of a mistake)."""

    def __init__(self, *args, fwd=None, bwd=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._fwd, self._bwd = fwd, bwd

    def forward(self, x):
        if self._fwd is None:
            return super().forward(x)
        return self._fwd(self, x)

    def backward(self, dout):
        if self._bwd is None:
            return super().backward(dout)
        return self._bwd(self, dout)


def _linear_mistake(fwd=None, bwd=None) -> Callable:
    return lambda *args, **kwargs: _LinearMistake(*args, fwd=fwd, bwd=bwd, **kwargs)


def _fwd_cache(self, out, x):
    """Cache ``x`` as the reference does, return ``out``."""
    self.x = x
    return out


def _bwd(dx=None, dW=None, db=None) -> Callable:
    """A backward whose dx, dW or db is computed by the given function of the layer."""

    def backward(self, dout):
        self.dW = self.x.T @ dout if dW is None else dW(self, dout)
        self.db = dout.sum(axis=0) if db is None else db(self, dout)
        return dout @ self.W.T if dx is None else dx(self, dout)

    return backward


def linear_forward(student) -> CheckResult:
    """Check ``Linear.forward``: ``x @ W + b``, caching the input in ``self.x``."""
    return run_check(
        "linear_forward",
        student,
        ref.Linear,
        [Case(c.name, c.args, run=_run_linear_forward) for c in _linear_cases()],
        arg_names=["x", "W", "b", "dout"],
        mistakes=[
            Mistake(
                "the bias is missing: z = x @ W + b.",
                _linear_mistake(fwd=lambda self, x: _fwd_cache(self, x @ self.W, x)),
            ),
            Mistake(
                "W has shape (in, out), so the product is x @ W, (N, in) @ (in, out); "
                "x @ W.T would need W of shape (out, in).",
                _linear_mistake(
                    fwd=lambda self, x: _fwd_cache(self, x @ self.W.T + self.b, x)
                ),
            ),
            Mistake(
                "Linear is only the affine map x @ W + b: the activation is a layer "
                "of its own, applied by the next layer in the list.",
                _linear_mistake(
                    fwd=lambda self, x: _fwd_cache(
                        self, np.maximum(x @ self.W + self.b, 0), x
                    )
                ),
            ),
            Mistake(
                "the bias is added to the output, x @ W + b, not to the weights "
                "(x @ (W + b) broadcasts b over every row of W).",
                _linear_mistake(
                    fwd=lambda self, x: _fwd_cache(self, x @ (self.W + self.b), x)
                ),
            ),
            Mistake(
                "forward must cache its *input* in self.x: backward needs it for "
                "dW, the product of the input (transposed) and dout.",
                _linear_mistake(
                    fwd=lambda self, x: _fwd_cache(self, x @ self.W + self.b, None)
                ),
            ),
            Mistake(
                "forward must cache its *input* in self.x, not the output: "
                "backward needs the input for dW.",
                _linear_mistake(
                    fwd=lambda self, x: (
                        setattr(self, "x", x @ self.W + self.b) or self.x
                    )
                ),
            ),
        ],
        record=LAB.record,
    )


class _LinearAccumulates(ref.Linear):
    def backward(self, dout):
        self.dW += self.x.T @ dout
        self.db += dout.sum(axis=0)
        return dout @ self.W.T


class _LinearLocalGrads(ref.Linear):
    def backward(self, dout):
        dW = self.x.T @ dout  # noqa: F841 - the mistake: computed, never stored
        db = dout.sum(axis=0)  # noqa: F841
        return dout @ self.W.T


def linear_backward(student) -> CheckResult:
    """Check ``Linear.backward``: sets ``dW``, ``db``, returns ``dx``; twice in a row
    on one layer, the second batch's gradients replace the first's."""
    cases = [Case(c.name, c.args, run=_run_linear_backward) for c in _linear_cases()]
    first = _linear_cases()[1]
    cases.append(
        Case(
            "N=6, in=4, out=3: two batches in a row", first.args, run=_run_linear_twice
        )
    )
    return run_check(
        "linear_backward",
        student,
        ref.Linear,
        cases,
        arg_names=["x", "W", "b", "dout"],
        mistakes=[
            Mistake(
                "dW and db are still the zeros the constructor put there: the "
                "gradients were computed into local names and never stored in the "
                "layer. Store them in self.dW and self.db (they are the entries of "
                "self.grads that update reads).",
                _LinearLocalGrads,
            ),
            Mistake(
                "after a second batch, dW and db hold the sum of both batches' "
                "gradients: stage 2 never zeroes them, so backward must store (=) "
                "this batch's gradients, not add (+=) to the previous ones.",
                _LinearAccumulates,
            ),
            Mistake(
                "db must be summed over the batch, shape (out,): b was added to every "
                "row, so every row's gradient flows into it.",
                _linear_mistake(bwd=_bwd(db=lambda self, dout: dout)),
            ),
            Mistake(
                "db has one entry per output, shape (out,): sum dout over the "
                "examples (the rows, axis 0), not over each example's outputs "
                "(axis 1), which gives one number per example.",
                _linear_mistake(bwd=_bwd(db=lambda self, dout: dout.sum(axis=1))),
            ),
            Mistake(
                "db must have the shape of b, (out,): keepdims=True leaves a "
                "(1, out) row, which the update would broadcast into b's place.",
                _linear_mistake(
                    bwd=_bwd(db=lambda self, dout: dout.sum(axis=0, keepdims=True))
                ),
            ),
            Mistake(
                "db is the sum over the batch, not the mean: the 1/N of the loss is "
                "already inside dout.",
                _linear_mistake(bwd=_bwd(db=lambda self, dout: dout.mean(axis=0))),
            ),
            Mistake(
                "dW is the transpose of what it should be: dW has the shape of W, "
                "(in, out), so the product starts with x transposed, (in, N).",
                _linear_mistake(bwd=_bwd(dW=lambda self, dout: dout.T @ self.x)),
            ),
            Mistake(
                "dW is too small by a factor N: the 1/N of the mean is already inside "
                "dout, so dW needs no division.",
                _linear_mistake(
                    bwd=_bwd(dW=lambda self, dout: self.x.T @ dout / len(dout))
                ),
            ),
            Mistake(
                "dx must have the shape of x, (N, in): dout is (N, out) and W is "
                "(in, out), so W must be transposed to bring the gradient back.",
                _linear_mistake(bwd=_bwd(dx=lambda self, dout: dout @ self.W)),
            ),
            Mistake(
                "dW needs the layer's *input* x: cache the input in forward "
                "(self.x), not the output.",
                _linear_mistake(
                    fwd=lambda self, x: (
                        setattr(self, "x", x @ self.W + self.b) or self.x
                    )
                ),
            ),
        ],
        output_names=["dx", "dW", "db"],
        hints=[_second_dx_hint],
        record=LAB.record,
    )


# ------------------------------------------------------------------------ activations
def _activation_cases() -> list[Case]:
    """(x, dout): random, zeros and negatives, a batch of one, and ±1000."""
    with_zeros = _randn((4, 6), 41)
    with_zeros[0, :3] = 0.0
    with_zeros[2, 1] = 0.0
    with_zeros[3] = -np.abs(with_zeros[3])
    cases = [
        Case(
            "random values, shape (5, 3)", (_randn((5, 3), 40, 2.0), _randn((5, 3), 50))
        ),
        Case(
            "exact zeros and negatives, shape (4, 6)", (with_zeros, _randn((4, 6), 51))
        ),
        Case(
            "a batch of one, shape (1, 7)",
            (_randn((1, 7), 42, 3.0), _randn((1, 7), 52)),
        ),
    ]
    x = np.array([[1000.0, -1000.0, 0.5], [-1000.0, 999.0, -2.0]], np.float32)
    cases.append(Case("inputs of ±1000, shape (2, 3)", (x, _randn((2, 3), 53))))
    return cases


def _run_layer(cls, x, dout):
    """Build a parameter-free layer, run forward then backward, then backward again
    on the same forward (the cache read twice); note any warning."""
    layer = cls()
    with _fp_warnings() as found:
        out = _copied(layer.forward(x))
        dx = _copied(layer.backward(dout))
        again = backward_again(layer, dout)  # the cache must not have been edited
    return {WARNINGS: _warning_text(found), "output": out, "dx": dx, SECOND_DX: again}


def _copied(value):
    """An array copied (a later call may edit it in place), anything else as it is."""
    return value.copy() if isinstance(value, np.ndarray) else value


_second_dx_hint = second_dx_hint(
    "dx", "an in-place *=, -= or a slice assignment on self.out"
)


def _layer(forward: Callable, backward: Callable) -> type:
    """A layer class from two functions (a model of a mistake).

    ``forward(x)`` returns ``out``; ``backward(x, out, dout)`` returns ``dx``.
    """

    class Model:
        def forward(self, x):
            self.x = x
            self.out = forward(x)
            return self.out

        def backward(self, dout):
            return backward(self.x, self.out, dout)

    return Model


def _stable_sigmoid(x):
    with np.errstate(over="ignore", under="ignore"):
        return ref.Sigmoid().forward(x)


def relu(student) -> CheckResult:
    """Check the ``ReLU`` layer: ``max(x, 0)`` forward, ``dout * (x > 0)`` backward."""
    relu_fwd = lambda x: np.maximum(x, 0)
    return run_check(
        "relu",
        student,
        ref.ReLU,
        [Case(c.name, c.args, run=_run_layer) for c in _activation_cases()],
        arg_names=["x", "dout"],
        mistakes=[
            Mistake(
                "backward returns the local derivative only; the chain rule "
                "multiplies it by the gradient that arrives, dout.",
                _layer(relu_fwd, lambda x, out, dout: (x > 0).astype(x.dtype)),
            ),
            Mistake(
                "the output is always >= 0, so `out >= 0` lets every gradient "
                "through: the slope is 0 wherever x <= 0, so the mask must be strict.",
                _layer(relu_fwd, lambda x, out, dout: dout * (out >= 0)),
            ),
            Mistake(
                "at x = 0 ReLU has a kink; this course takes the derivative there "
                "to be 0, so use x > 0, not x >= 0.",
                _layer(relu_fwd, lambda x, out, dout: dout * (x >= 0)),
            ),
            Mistake(
                "backward multiplies dout by ReLU's *derivative*, a 0/1 mask, not by "
                "the output.",
                _layer(relu_fwd, lambda x, out, dout: dout * out),
            ),
            Mistake(
                "ReLU sets negative values to 0; it does not take their absolute "
                "value.",
                _layer(np.abs, lambda x, out, dout: dout * np.sign(x)),
            ),
        ],
        hints=[_second_dx_hint],
        record=LAB.record,
    )


def sigmoid(student) -> CheckResult:
    """Check the ``Sigmoid`` layer: stable at ±1000, derivative ``s (1 - s)``."""
    return run_check(
        "sigmoid",
        student,
        ref.Sigmoid,
        [Case(c.name, c.args, run=_run_layer) for c in _activation_cases()],
        arg_names=["x", "dout"],
        hints=[
            _second_dx_hint,
            _overflow_hint(
                "np.exp(-x) overflows for x = -1000 (NumPy warns even when the "
                "result is thrown away afterwards, e.g. in a branch of np.where, "
                "which computes both branches for every element). Only ever "
                "exponentiate a number <= 0 (minus the absolute value of x), and "
                "write the sigmoid of positive and of negative x from it, as the "
                "exercise shows."
            ),
        ],
        mistakes=[
            Mistake(
                "the derivative is s * (1 - s) with s the sigmoid's *output* (cache "
                "it in forward), not x * (1 - x) with the input.",
                _layer(_stable_sigmoid, lambda x, s, dout: dout * x * (1 - x)),
            ),
            Mistake(
                "backward returns the local derivative only; the chain rule "
                "multiplies it by the gradient that arrives, dout.",
                _layer(_stable_sigmoid, lambda x, s, dout: s * (1 - s)),
            ),
            Mistake(
                "the derivative of the sigmoid is s * (1 - s), not s itself.",
                _layer(_stable_sigmoid, lambda x, s, dout: dout * s),
            ),
        ],
        record=LAB.record,
    )


def tanh(student) -> CheckResult:
    """Check the ``Tanh`` layer: stable at ±1000, derivative ``1 - out**2``."""
    return run_check(
        "tanh",
        student,
        ref.Tanh,
        [Case(c.name, c.args, run=_run_layer) for c in _activation_cases()],
        arg_names=["x", "dout"],
        hints=[
            _second_dx_hint,
            _overflow_hint(
                "np.exp(1000) overflows, and (exp(x) - exp(-x)) / (exp(x) + exp(-x)) "
                "becomes inf / inf = NaN at ±1000: use np.tanh, which saturates at ±1 "
                "(or build tanh from np.exp(-2 * np.abs(x)), which never overflows)."
            ),
        ],
        mistakes=[
            Mistake(
                "the derivative is 1 - t**2 with t = tanh(x), the *output* (cache it "
                "in forward), not 1 - x**2 with the input.",
                _layer(np.tanh, lambda x, t, dout: dout * (1 - x**2)),
            ),
            Mistake(
                "the derivative of tanh is 1 - tanh(x)**2: the square is missing.",
                _layer(np.tanh, lambda x, t, dout: dout * (1 - t)),
            ),
            Mistake(
                "backward returns the local derivative only; the chain rule "
                "multiplies it by the gradient that arrives, dout.",
                _layer(np.tanh, lambda x, t, dout: 1 - t**2),
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- softmax
def _logit_cases() -> list[Case]:
    """(logits, dout): N != C in the first, so a missing keepdims cannot broadcast."""
    huge = np.array([[1000.0, 999.0, 998.0], [-1000.0, -999.0, -1001.0]], np.float32)
    return [
        Case(
            "random logits, shape (4, 3)", (_randn((4, 3), 60, 2.0), _randn((4, 3), 70))
        ),
        Case("a batch of one, shape (1, 5)", (_randn((1, 5), 61), _randn((1, 5), 71))),
        Case("logits of ±1000, shape (2, 3)", (huge, _randn((2, 3), 72))),
        Case(
            "equal logits, shape (3, 4)",
            (np.zeros((3, 4), np.float32), _randn((3, 4), 73)),
        ),
        Case(
            "logits hundreds apart within a row, shape (3, 4)",
            (_SPREAD, _randn((3, 4), 74)),
        ),
    ]


GLOBAL_MAX_HINT = (
    "shift each row by its own maximum (over axis 1, keeping the dimension), not by "
    "the maximum of the whole array: rows far below it underflow to 0 / 0."
)  # the words of lab 1's softmax check


def _softmax_global_max(z):
    e = np.exp(z - z.max())  # the whole array's maximum: a mistake
    return e / e.sum(axis=1, keepdims=True)


# rows whose logits are hundreds apart, the largest first, last or in between:
# shifting by anything but the row's maximum (its mean, its minimum) overflows
_SPREAD = np.array(
    [
        [300.0, 0.0, -300.0, 10.0],
        [-500.0, -20.0, 0.0, 400.0],
        [0.0, 250.0, -250.0, 1.0],
    ],
    np.float32,
)


def softmax(student) -> CheckResult:
    """Check the ``Softmax`` layer: stable forward, Jacobian-vector product backward."""
    sm = ref.softmax
    return run_check(
        "softmax",
        student,
        ref.Softmax,
        [Case(c.name, c.args, run=_run_layer) for c in _logit_cases()],
        arg_names=["x", "dout"],
        mistakes=[
            Mistake(
                "backward must use the softmax *output* s (cache it in forward): "
                "dx = s * (dout - sum(dout * s)), with the sum over each row. You "
                "built it from the input x.",
                _layer(
                    sm,
                    lambda x, s, dout: (
                        x * (dout - np.sum(dout * x, axis=1, keepdims=True))
                    ),
                ),
            ),
            Mistake(
                "s * (1 - s) is only the diagonal of the softmax Jacobian: every "
                "output of a row depends on every input of that row, so "
                "dx = s * (dout - sum(dout * s)), the sum over the row's classes.",
                _layer(sm, lambda x, s, dout: dout * s * (1 - s)),
            ),
            Mistake(
                "the sum in dx = s * (dout - sum(dout * s)) runs over each row's "
                "classes (axis 1, keeping the dimension), not over the batch.",
                _layer(
                    sm,
                    lambda x, s, dout: (
                        s * (dout - np.sum(dout * s, axis=0, keepdims=True))
                    ),
                ),
            ),
            Mistake(
                "the term sum(dout * s) is missing: dx = s * (dout - sum(dout * s)).",
                _layer(sm, lambda x, s, dout: s * dout),
            ),
            Mistake(
                GLOBAL_MAX_HINT,
                _layer(
                    _softmax_global_max,
                    lambda x, s, dout: (
                        s * (dout - np.sum(dout * s, axis=1, keepdims=True))
                    ),
                ),
            ),
        ],
        hints=[
            _second_dx_hint,
            _overflow_hint(
                "exp overflows to inf and inf / inf is NaN: shift each row by its own "
                "maximum before the exponential (softmax does not change when a row "
                "is shifted; shifting by the mean or the minimum is not enough when "
                "a row's values are hundreds apart)."
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- losses
def _sce_cases() -> list[Case]:
    """(logits, y)."""
    huge = np.array([[1000.0, 999.0, 998.0], [-1000.0, -999.0, -1001.0]], np.float32)
    confident = np.array(
        [[0.0, 200.0, 0.0], [300.0, 0.0, 0.0], [0.0, 0.0, 150.0]], np.float32
    )
    # hundreds apart, and the correct class about 1e-7 (above the floor EPS = 1e-12)
    far = np.array([[300.0, 284.0, -300.0], [-200.0, 0.0, 17.0]], np.float32)
    wrong = np.array(
        [[0.0, 200.0, 0.0], [300.0, 0.0, -300.0], [-50.0, 100.0, 0.0]], np.float32
    )
    return [
        # square first: integer labels used as one-hot rows broadcast, not raise
        Case("N=4, C=4", (_randn((4, 4), 84, 2.0), _labels(4, 4, 84))),
        Case("N=5, C=3", (_randn((5, 3), 80, 2.0), _labels(5, 3, 80))),
        Case("a batch of one, C=4", (_randn((1, 4), 81, 2.0), _labels(1, 4, 81))),
        Case("N=6, C=4", (_randn((6, 4), 82, 2.0), _labels(6, 4, 82))),
        Case("logits of ±1000, shape (2, 3)", (huge, np.array([1, 0]))),
        Case(
            "confident and right: probabilities of exactly 0 in other classes",
            (confident, np.array([1, 0, 2])),
        ),
        Case(_FAR, (far, np.array([1, 1]))),
        # confidently wrong: log p of the label is -200, -600 and -150, p rounds to
        # 0 in float32, so a loss from log(max(p, EPS)) stops near 27.6
        Case(_WRONG, (wrong, np.array([0, 2, 0]))),
    ]


_FAR = "logits hundreds apart, the correct class at probability 1e-7"
_WRONG = "confidently wrong: the correct class hundreds below the row's maximum"


_LOG_SOFTMAX = (
    "compute the log-probability directly from the logits shifted by each row's "
    "maximum (log-softmax, by log-sum-exp): it is exact and finite for any logits, "
    "with no floor and no log of a probability."
)


def _floor_hint(got, expected, case) -> str:
    """The loss wrong where the correct class is unlikely: the log of a probability.

    With the correct class at 1e-7, a floor above it (or a constant added to every
    probability) makes the loss too small; hundreds below the maximum, the
    probability rounds to 0 and its log is -inf, or the floor caps the loss.
    """
    if case.name not in (_FAR, _WRONG) or not isinstance(got, dict):
        return ""
    loss, want = got.get("loss"), expected.get("loss")
    if not isinstance(loss, (float, np.floating)):
        return ""
    if case.name == _FAR and loss < want:
        return (
            "where the correct class has a tiny probability (1e-7) your loss is too "
            "small: a floor on the probability, or a constant added to it, hides how "
            "wrong a confident mistake is; " + _LOG_SOFTMAX
        )
    if case.name == _WRONG and not np.isclose(loss, want, rtol=1e-4):
        return (
            f"for a confidently wrong example your loss is {float(loss):.4g} where it "
            f"should be {float(want):.4g}: the correct class's probability rounds to "
            "0, so its log is -inf, or a floor such as EPS caps the loss near "
            "-log(EPS) = 27.6 however wrong the network is. Instead, " + _LOG_SOFTMAX
        )
    return ""


def _run_loss(cls, inputs, targets):
    loss_layer = cls()
    with _fp_warnings() as found:
        loss = loss_layer.forward(inputs, targets)
        grad = loss_layer.backward()
        grad = grad.copy() if isinstance(grad, np.ndarray) else grad
        again = loss_layer.backward()  # the cache read twice: never edited in place
    return {
        WARNINGS: _warning_text(found),
        "loss": loss,
        "gradient": grad,
        SECOND: again,
    }


SECOND = "the gradient of a second backward on the same forward"


def _second_backward_hint(got, expected, case) -> str:
    if isinstance(got, dict) and SECOND in got:
        from utils.check.core import agrees

        if agrees(got.get("gradient"), expected["gradient"]) and not agrees(
            got.get(SECOND), expected[SECOND]
        ):
            return (
                "a second backward after the same forward gives another gradient: "
                "backward changed what forward cached (subtracting 1 in place from "
                "the cached probabilities, say). Work on a copy, e.g. "
                "grad = self.probs.copy(), and leave the cache as it was."
            )
    return ""


def _loss(forward: Callable, backward: Callable) -> type:
    """A loss class from ``forward(a, b) -> loss`` and ``backward(a, b) -> grad``."""

    class Model:
        def forward(self, a, b):
            self.a, self.b = a, b
            return forward(a, b)

        def backward(self):
            return backward(self.a, self.b)

    return Model


def _Y(logits, y):
    return ref.one_hot(y, logits.shape[1], logits.dtype)


def _ce(logits, y):
    return ref.SoftmaxCrossEntropy().forward(logits, y)


def _sce_grad(logits, y):
    return (ref.softmax(logits) - _Y(logits, y)) / len(y)


def softmax_cross_entropy(student) -> CheckResult:
    """Check ``SoftmaxCrossEntropy``: mean cross-entropy, backward ``(p - Y) / N``."""
    return run_check(
        "softmax_cross_entropy",
        student,
        ref.SoftmaxCrossEntropy,
        [Case(c.name, c.args, run=_run_loss) for c in _sce_cases()],
        arg_names=["logits", "y"],
        hints=[
            _overflow_hint(
                "exp(1000) overflows to inf and inf / inf is NaN: compute the "
                "softmax with each row's maximum subtracted first."
            ),
            _floor_hint,
            _second_backward_hint,
        ],
        mistakes=[
            Mistake(
                GLOBAL_MAX_HINT,
                _loss(
                    lambda z, y: (
                        -np.mean(np.log(_softmax_global_max(z)[np.arange(len(y)), y]))
                    ),
                    lambda z, y: (_softmax_global_max(z) - _Y(z, y)) / len(y),
                ),
            ),
            Mistake(
                "backward is N times too large: the loss is a mean over the batch, "
                "so dlogits = (p - Y) / N.",
                _loss(_ce, lambda z, y: ref.softmax(z) - _Y(z, y)),
            ),
            Mistake(
                "the loss is the mean over the batch, not the sum: divide by N.",
                _loss(lambda z, y: _ce(z, y) * len(y), _sce_grad),
            ),
            Mistake(
                "subtract 1 only at the correct class: p - Y with Y the one-hot "
                "labels, not p - 1 everywhere.",
                _loss(_ce, lambda z, y: (ref.softmax(z) - 1) / len(y)),
            ),
            Mistake(
                "the -Y is missing: the gradient of -log p_y with respect to the "
                "logits is (p - Y) / N.",
                _loss(_ce, lambda z, y: ref.softmax(z) / len(y)),
            ),
            Mistake(
                "y holds integer labels, one per example, not one-hot rows: "
                "subtracting it from the probabilities takes a label value from "
                "every entry of a column. Subtract 1 only at each row's label.",
                _loss(_ce, lambda z, y: (ref.softmax(z) - y) / len(y)),
            ),
            Mistake(
                "y holds integer labels, one per example, not one-hot rows: "
                "multiplying log(probs) by it scales every column by a label value. "
                "Use each label to pick its row's probability.",
                _loss(
                    lambda z, y: float(
                        -np.mean(np.sum(y * np.log(ref.softmax(z) + 1e-30), axis=1))
                    ),
                    _sce_grad,
                ),
            ),
            Mistake(
                "probs[:, y] takes, in every row, the columns of all N labels: an "
                "(N, N) array. Each example needs one entry, its own label's: pair "
                "each row index with that row's label.",
                _loss(
                    lambda z, y: float(
                        -np.mean(np.log(np.maximum(ref.softmax(z)[:, y], ref.EPS)))
                    ),
                    _sce_grad,
                ),
            ),
            Mistake(
                "0 * log(0) is 0 * -inf = NaN: pick only the correct class's "
                "probability in each row (index the rows with their labels), "
                "instead of multiplying log(probs) by a one-hot matrix.",
                _loss(
                    lambda z, y: float(
                        -np.mean(np.sum(_Y(z, y) * np.log(ref.softmax(z)), axis=1))
                    ),
                    _sce_grad,
                ),
            ),
            Mistake(
                "the loss is -log p (a positive number that shrinks as p -> 1): "
                "check the sign.",
                _loss(lambda z, y: -_ce(z, y), _sce_grad),
            ),
        ],
        record=LAB.record,
    )


def _mse_cases() -> list[Case]:
    """(pred, target)."""
    same = _randn((3, 2), 93)
    return [
        Case("N=4, K=3", (_randn((4, 3), 90), _randn((4, 3), 94))),
        Case("a batch of one, K=2", (_randn((1, 2), 91), _randn((1, 2), 95))),
        Case("N=5, K=1", (_randn((5, 1), 92), _randn((5, 1), 96))),
        Case("pred equal to target", (same, same.copy())),
    ]


def mse(student) -> CheckResult:
    """Check ``MSE``: the mean over all N*K entries; backward ``2 (p - t) / (N K)``."""
    mean_sq = lambda p, t: float(np.mean((p - t) ** 2))
    return run_check(
        "mse",
        student,
        ref.MSE,
        [Case(c.name, c.args, run=_run_loss) for c in _mse_cases()],
        arg_names=["pred", "target"],
        hints=[_second_backward_hint],
        mistakes=[
            Mistake(
                "the derivative of (p - t)**2 is 2 * (p - t): the factor 2 is missing.",
                _loss(mean_sq, lambda p, t: (p - t) / p.size),
            ),
            Mistake(
                "the loss is the mean over all N * K entries, so the gradient is "
                "divided by N * K (p.size), not by N only.",
                _loss(mean_sq, lambda p, t: 2 * (p - t) / len(p)),
            ),
            Mistake(
                "the gradient with respect to pred is 2 * (pred - target) / (N K): "
                "check the sign.",
                _loss(mean_sq, lambda p, t: 2 * (t - p) / p.size),
            ),
            Mistake(
                "the loss is the mean of the squared errors over all N * K entries, "
                "not their sum.",
                _loss(
                    lambda p, t: float(np.sum((p - t) ** 2)),
                    lambda p, t: 2 * (p - t) / p.size,
                ),
            ),
            Mistake(
                "this course's MSE averages over all N * K entries (np.mean), not "
                "over the N examples only.",
                _loss(
                    lambda p, t: float(np.sum((p - t) ** 2) / len(p)),
                    lambda p, t: 2 * (p - t) / len(p),
                ),
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- init
_INIT_SHAPES = [(300, 200), (3, 7), (1, 1)]  # the first is large: statistics


def _init_candidates(kind: str, fan_in: int, fan_out: int) -> list[tuple[float, str]]:
    """Standard deviations that common mistakes give, with a hint for each."""
    if kind == "uniform":  # U(-a, a) has standard deviation a / sqrt(3)
        r3 = np.sqrt(3.0)
        return [
            (
                np.sqrt(6.0 / fan_in) / r3,
                "your limit looks like sqrt(6 / fan_in): Glorot's limit uses "
                "fan_in + fan_out, a = sqrt(6 / (fan_in + fan_out)).",
            ),
            (
                np.sqrt(2.0 / (fan_in + fan_out)) / r3,
                "your limit looks like sqrt(2 / (fan_in + fan_out)), which is the "
                "standard deviation Glorot wants; U(-a, a) has standard deviation "
                "a / sqrt(3), so the limit is a = sqrt(6 / (fan_in + fan_out)).",
            ),
            (
                6.0 / (fan_in + fan_out) / r3,
                "your limit looks like 6 / (fan_in + fan_out): the square root is "
                "missing.",
            ),
            (
                np.sqrt(6.0 / (fan_in + fan_out)) / 2 / r3,
                "your weights span half the range: draw from U(-a, a), from -a to a.",
            ),
            (1 / r3, "the draws are not scaled: multiply by the limit a."),
        ]
    return [
        (
            2.0 / fan_in,
            "your standard deviation looks like 2 / fan_in, which is the variance: "
            "the standard deviation is its square root, sqrt(2 / fan_in).",
        ),
        (
            np.sqrt(2.0 / fan_out),
            "your standard deviation looks like sqrt(2 / fan_out): He's uses fan_in, "
            "the number of inputs that are summed.",
        ),
        (
            np.sqrt(1.0 / fan_in),
            "your standard deviation looks like sqrt(1 / fan_in): the factor 2 "
            "(which makes up for ReLU zeroing half its inputs) is missing.",
        ),
        (
            np.sqrt(2.0 / (fan_in + fan_out)),
            "your standard deviation looks like Glorot's sqrt(2 / (fan_in + "
            "fan_out)); He's is sqrt(2 / fan_in).",
        ),
        (
            1.0,
            "the draws are not scaled: multiply the standard normal by "
            "sqrt(2 / fan_in).",
        ),
    ]


def _closest(value: float, candidates: list[tuple[float, str]]) -> str:
    """The hint of the candidate within 3% of ``value``, if any."""
    best_value, hint = min(candidates, key=lambda c: abs(np.log(value / c[0])))
    return hint if abs(np.log(value / best_value)) < 0.03 else ""


def _result(name: str, status: str, passed: int, message: str = "", hint: str = ""):
    return finish(
        CheckResult(name, status, passed, len(_INIT_SHAPES) + 1, message, hint),
        LAB.record,
    )


def _check_initializer(name: str, student, kind: str) -> CheckResult:
    """Shape, dtype and, for random ones, the distribution and the use of ``rng``.

    ``kind`` is ``"zeros"``, ``"uniform"`` (Glorot) or ``"normal"`` (He).
    """
    if not callable(student):
        return _result(
            name,
            FAILED,
            0,
            f"`{name}` should be a function, but it is {type(student).__name__}.",
            "pass the function itself, without calling it: check(f), not check(f()).",
        )
    draws = []
    for i, (fan_in, fan_out) in enumerate(_INIT_SHAPES):
        where = f"Case 'fan_in={fan_in}, fan_out={fan_out}': "
        try:
            with _fp_warnings():
                W = student(fan_in, fan_out, np.random.default_rng(100 + i))
        except NotImplementedError:
            return _result(name, NOT_IMPLEMENTED, 0)
        except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
            return _result(
                name,
                FAILED,
                i,
                where + "your code raised an error.\n" + describe_exception(exc),
                "the function is called as f(fan_in, fan_out, rng) and returns an "
                "array of shape (fan_in, fan_out).",
            )
        if not isinstance(W, np.ndarray):
            return _result(
                name,
                FAILED,
                i,
                where + f"the result should be a NumPy array of shape "
                f"({fan_in}, {fan_out}), but your code returned {type(W).__name__}.",
                "did you forget the `return` statement?" if W is None else "",
            )
        if W.shape != (fan_in, fan_out):
            hint = ""
            if W.shape == (fan_out, fan_in):
                hint = (
                    "the shape is transposed: W is (fan_in, fan_out), so x @ W works."
                )
            elif W.size == fan_in * fan_out or W.ndim != 2:
                hint = "pass the shape as one tuple: size=(fan_in, fan_out)."
            return _result(
                name,
                FAILED,
                i,
                where + f"the result has shape {W.shape}, but it should have shape "
                f"({fan_in}, {fan_out}).",
                hint,
            )
        if W.dtype != np.float32:
            return _result(
                name,
                FAILED,
                i,
                where + f"the result has dtype {W.dtype}; the course works in float32.",
                "NumPy draws and allocates float64 by default: convert the result to "
                "float32, or give the dtype when you create the array."
                if W.dtype == np.float64
                else "the weights must be float32 numbers: an integer or bool array "
                "(dtype=int, dtype=bool) holds the right zeros but turns every "
                "update into integer arithmetic; give dtype=np.float32.",
            )
        if not np.all(np.isfinite(W)):
            return _result(name, FAILED, i, where + "the result contains inf or NaN.")
        draws.append(W)
    W = draws[0].astype(np.float64)
    fan_in, fan_out = _INIT_SHAPES[0]
    where = f"Case 'fan_in={fan_in}, fan_out={fan_out}': "
    passed = len(_INIT_SHAPES)
    if kind == "zeros":
        if np.any(W != 0):
            return _result(
                name,
                FAILED,
                passed,
                where + f"{int(np.sum(W != 0))} of {W.size} weights are not 0.",
                "np.zeros((fan_in, fan_out), dtype=np.float32); the rng is not needed.",
            )
        return _result(name, PASSED, passed + 1)
    std = float(W.std())
    if std == 0:
        return _result(
            name,
            FAILED,
            passed,
            where + "every weight is the same number: nothing is random.",
            "draw from the generator you are given, rng.uniform(...) or "
            "rng.standard_normal(...).",
        )
    if kind == "uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        target, what = (
            limit / np.sqrt(3),
            "a / sqrt(3) with a = sqrt(6 / (fan_in + fan_out))",
        )
    else:
        target, what = np.sqrt(2.0 / fan_in), "sqrt(2 / fan_in)"
    if abs(W.mean()) > 0.05 * std:
        return _result(
            name,
            FAILED,
            passed,
            where + f"the weights have mean {W.mean():.4g}, expected about 0.",
            "the weights are centred on 0: draw from U(-a, a) or N(0, std^2), not "
            "from [0, 1) (rng.random).",
        )
    if abs(std / target - 1) > 0.03:
        return _result(
            name,
            FAILED,
            passed,
            where + f"the weights have standard deviation {std:.4g}; expected "
            f"about {target:.4g} = {what} (within 3%).",
            _closest(std, _init_candidates(kind, fan_in, fan_out)),
        )
    beyond = float(np.mean(np.abs(W) > 2 * target))  # a normal has 4.6% beyond 2 sd
    if kind == "uniform" and (beyond > 0 or np.abs(W).max() > limit * (1 + 1e-6)):
        return _result(
            name,
            FAILED,
            passed,
            where + f"some weights are beyond the limit a = {limit:.4g} "
            "(their largest magnitude is " + f"{np.abs(W).max():.4g}).",
            "Glorot's uniform initialisation draws from U(-a, a), "
            "rng.uniform(-a, a, size=...), not from a normal distribution.",
        )
    if kind == "normal" and beyond < 0.03:
        return _result(
            name,
            FAILED,
            passed,
            where + f"only {beyond:.2%} of the weights are beyond 2 standard "
            "deviations; a normal distribution has 4.6% there.",
            "He's initialisation draws from a normal distribution, "
            "rng.standard_normal(...) * std (or rng.normal), not a uniform one.",
        )
    again = student(fan_in, fan_out, np.random.default_rng(100))
    other = student(fan_in, fan_out, np.random.default_rng(999))
    if not np.array_equal(again, draws[0]) or np.array_equal(other, draws[0]):
        return _result(
            name,
            FAILED,
            passed,
            "The same rng seed should give the same weights, and another seed "
            "other weights; yours do not.",
            "draw from the generator `rng` you are given (rng.uniform, "
            "rng.standard_normal), not from np.random or a generator of your own: "
            "then a network's seed decides all its weights.",
        )
    return _result(name, PASSED, passed + 1)


def zeros(student) -> CheckResult:
    """Check ``zeros(fan_in, fan_out, rng)``: float32 zeros, (fan_in, fan_out)."""
    return _check_initializer("zeros", student, "zeros")


def glorot_uniform(student) -> CheckResult:
    """Check ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    return _check_initializer("glorot_uniform", student, "uniform")


def he_normal(student) -> CheckResult:
    """Check ``he_normal``: N(0, 2 / fan_in), drawn from rng, float32."""
    return _check_initializer("he_normal", student, "normal")


# --------------------------------------------------------------------------- network
def _reference_layers(sizes, activation, seed, dtype=np.float32):
    """Reference layers with seeded weights and non-zero biases."""
    net = ref.Network(sizes, activation, seed=seed, dtype=dtype)
    for i, layer in enumerate(net.layers):
        if isinstance(layer, ref.Linear):
            layer.b = _randn(layer.b.shape, 300 + 10 * seed + i, 0.1).astype(dtype)
    return net.layers


def _network(cls, sizes, activation, seed):
    """The student's class holding reference layers: only its own methods are tested.

    Its ``__init__`` is skipped, so that ``forward`` can be checked before the
    initialisers are written.
    """
    net = object.__new__(cls)
    net.layers = _reference_layers(sizes, activation, seed)
    net.loss_layer = ref.SoftmaxCrossEntropy()
    return net


def _net_cases() -> list[Case]:
    """(sizes, activation, seed, X, y, dlogits, lr); square widths first."""
    cases = []
    for name, sizes, activation, N, seed in [
        ("4 -> 4 -> 4 -> 4, relu, N=3", [4, 4, 4, 4], "relu", 3, 0),
        ("5 -> 4 -> 3, relu, N=6", [5, 4, 3], "relu", 6, 1),
        ("6 -> 5 -> 4 -> 3, tanh, N=4", [6, 5, 4, 3], "tanh", 4, 2),
        ("a batch of one, 7 -> 5 -> 2, sigmoid", [7, 5, 2], "sigmoid", 1, 3),
        ("one Linear layer, 3 -> 2, N=5", [3, 2], "relu", 5, 4),
        (
            "a deep network, 6 Linear and 5 ReLU layers, N=2",
            [5, 4, 4, 4, 4, 4, 3],
            "relu",
            2,
            5,
        ),
    ]:
        X = _randn((N, sizes[0]), 200 + seed)
        y = _labels(N, sizes[-1], 200 + seed)
        dlogits = _randn((N, sizes[-1]), 210 + seed, 0.3)
        cases.append(Case(name, (sizes, activation, seed, X, y, dlogits, 0.5)))
    return cases


def _grads_of(layers) -> dict[str, np.ndarray]:
    return {
        f"d{name} of layer {i}": g.copy()
        for i, layer in enumerate(layers)
        for name, g in layer.grads.items()
    }


def _params_of(layers) -> dict[str, np.ndarray]:
    return {
        f"{name} of layer {i}": p.copy()
        for i, layer in enumerate(layers)
        for name, p in layer.params.items()
    }


def _run_net_forward(cls, sizes, activation, seed, X, y, dlogits, lr):
    return _network(cls, sizes, activation, seed).forward(X)


def _run_net_backward(cls, sizes, activation, seed, X, y, dlogits, lr):
    net = _network(cls, sizes, activation, seed)
    for layer in net.layers:  # the reference forward fills the caches
        X = layer.forward(X)
    dX = net.backward(dlogits)
    return {"dX": dX, **_grads_of(net.layers)}


def _run_net_update(cls, sizes, activation, seed, X, y, dlogits, lr):
    net = _network(cls, sizes, activation, seed)
    out = X
    for layer in net.layers:
        out = layer.forward(out)
    for layer in reversed(net.layers):
        dlogits = layer.backward(dlogits)
    arrays = array_refs([layer.params for layer in net.layers])
    net.update(lr)
    require_in_place(arrays, [layer.params for layer in net.layers], "layers")
    return _params_of(net.layers)


def _run_train_step(cls, sizes, activation, seed, X, y, dlogits, lr):
    net = _network(cls, sizes, activation, seed)
    loss = net.train_step(X, y, lr)
    return {"loss": loss, **_params_of(net.layers)}


def _net_mistake(**methods) -> type:
    """The reference ``Network`` with some methods replaced: a model of a mistake."""
    return type("NetMistake", (ref.Network,), methods)


def _forward_over(select: Callable) -> Callable:
    def forward(self, X):
        for layer in select(self.layers):
            X = layer.forward(X)
        return X

    return forward


def _forward_last_only(self, X):
    out = X
    for layer in self.layers:
        out = layer.forward(X)
    return out


def network_forward(student) -> CheckResult:
    """Check ``Network.forward``: every layer in order, returns the logits."""
    return run_check(
        "network_forward",
        student,
        ref.Network,
        [Case(c.name, c.args, run=_run_net_forward) for c in _net_cases()],
        arg_names=["layer_sizes", "activation", "seed", "X", "y", "dlogits", "lr"],
        mistakes=[
            Mistake(
                "forward goes through the layers in order, first to last; it is "
                "backward that goes in reverse.",
                _net_mistake(forward=_forward_over(lambda layers: layers[::-1])),
            ),
            Mistake(
                "apply every layer in self.layers, the activations too.",
                _net_mistake(
                    forward=_forward_over(
                        lambda layers: [la for la in layers if la.params]
                    )
                ),
            ),
            Mistake(
                "feed each layer's output to the next; here every layer got the "
                "network's input.",
                _net_mistake(forward=_forward_last_only),
            ),
            Mistake(
                "forward returns the logits; the loss layer applies the softmax "
                "itself.",
                _net_mistake(
                    forward=lambda self, X: ref.softmax(ref.Network.forward(self, X))
                ),
            ),
        ],
        record=LAB.record,
    )


def _backward_over(select: Callable) -> Callable:
    def backward(self, dout):
        for layer in select(self.layers):
            dout = layer.backward(dout)
        return dout

    return backward


def _backward_not_chained(self, dlogits):
    for layer in reversed(self.layers):
        dX = layer.backward(dlogits)
    return dX


def network_backward(student) -> CheckResult:
    """Check ``Network.backward``: layers in reverse, returns dL/dX."""
    return run_check(
        "network_backward",
        student,
        ref.Network,
        [Case(c.name, c.args, run=_run_net_backward) for c in _net_cases()],
        arg_names=["layer_sizes", "activation", "seed", "X", "y", "dlogits", "lr"],
        mistakes=[
            Mistake(
                "backward goes through the layers in reverse, last to first.",
                _net_mistake(backward=_backward_over(lambda layers: layers)),
            ),
            Mistake(
                "pass each layer's result (its dx) on to the layer before it as its "
                "dout; here every layer got dlogits.",
                _net_mistake(backward=_backward_not_chained),
            ),
            Mistake(
                "the activations are layers too: their backward multiplies by "
                "their derivative, so go through every layer.",
                _net_mistake(
                    backward=_backward_over(
                        lambda layers: [la for la in layers[::-1] if la.params]
                    )
                ),
            ),
        ],
        record=LAB.record,
    )


def _update_weights_only(self, lr):
    for layer in self.layers:
        if "W" in layer.params:
            layer.params["W"] -= lr * layer.grads["W"]


def _update_first_only(self, lr):
    for layer in self.layers:
        for name, p in layer.params.items():
            p -= lr * layer.grads[name]
        return


def network_update(student) -> CheckResult:
    """Check ``Network.update(lr)``: every parameter, in place, ``p -= lr * g``."""
    return run_check(
        "network_update",
        student,
        ref.Network,
        [Case(c.name, c.args, run=_run_net_update) for c in _net_cases()],
        arg_names=["layer_sizes", "activation", "seed", "X", "y", "dlogits", "lr"],
        mistakes=[
            Mistake(
                "the parameters did not change. Go through every layer's params and "
                "grads dicts and change each parameter array itself, in place "
                "(`p = p - lr * g` only rebinds the name p). The check runs your "
                "method on reference layers, so a test such as "
                "`isinstance(layer, Linear)` does not recognise them: `layer.params` "
                "works for any layer.",
                _net_mistake(update=lambda self, lr: None),
            ),
            Mistake(
                "you moved uphill: gradient descent steps against the gradient.",
                _net_mistake(update=lambda self, lr: ref.Network.update(self, -lr)),
            ),
            Mistake(
                "the learning rate is missing: the step is the gradient scaled by lr.",
                _net_mistake(update=lambda self, lr: ref.Network.update(self, 1.0)),
            ),
            Mistake(
                "update every parameter of every layer, the biases too: every entry "
                "of layer.params, with its gradient in layer.grads.",
                _net_mistake(update=_update_weights_only),
            ),
            Mistake(
                "only the first layer was updated: is a `return` inside the loop?",
                _net_mistake(update=_update_first_only),
            ),
        ],
        record=LAB.record,
    )


def _step(order: str = "fbu", loss_after: bool = False, softmax_first: bool = False):
    def train_step(self, X, y, lr):
        logits = self.forward(X)
        if softmax_first:
            logits = ref.softmax(logits)
        loss = self.loss_layer.forward(logits, y)
        for stage in order[1:]:
            if stage == "b":
                self.backward(self.loss_layer.backward())
            else:
                self.update(lr)
        if loss_after:
            return self.loss_layer.forward(self.forward(X), y)
        return loss

    return train_step


@blames(
    LAB, ("network_forward", None), ("network_backward", None), ("network_update", None)
)
def train_step(student) -> CheckResult:
    """Check ``Network.train_step``: forward, loss, backward, update; the loss."""
    return run_check(
        "train_step",
        student,
        ref.Network,
        [Case(c.name, c.args, run=_run_train_step) for c in _net_cases()],
        arg_names=["layer_sizes", "activation", "seed", "X", "y", "dlogits", "lr"],
        mistakes=[
            Mistake(
                "the parameters did not change: after the loss, the gradients must go "
                "backward through the network (starting from the loss layer's "
                "gradient), and only then update, which uses what backward stored.",
                _net_mistake(train_step=_step(order="fb")),
            ),
            Mistake(
                "return the loss computed in this step's forward pass, before the "
                "update, not a loss recomputed afterwards.",
                _net_mistake(train_step=_step(loss_after=True)),
            ),
            Mistake(
                "the loss layer takes the logits and applies the softmax itself: do "
                "not apply a softmax before it.",
                _net_mistake(train_step=_step(softmax_first=True)),
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- training
class _Recorder:
    """Stands in for a network: records every ``train_step`` it is given.

    Column 0 of X holds each example's index and y the same index, so the batches
    show which examples were used, and whether X and y stayed together; column 1
    is a made-up per-example loss, averaged over the batch.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray, float]] = []

    def train_step(self, X, y, lr):
        self.calls.append((np.asarray(X)[:, 0].astype(int), np.asarray(y).copy(), lr))
        return float(np.mean(np.asarray(X)[:, 1]))


def _epoch_cases() -> list[Case]:
    """(X, y, batch_size, lr, rng)."""
    cases = []
    for name, N, batch_size, constant, seed in [
        ("N=12, batch_size=4", 12, 4, False, 0),
        ("N=10, batch_size=4 (a last batch of 2)", 10, 4, True, 1),
        ("N=6, batch_size=1", 6, 1, False, 2),
        ("N=5, batch_size=8 (one batch)", 5, 8, False, 3),
    ]:
        X = np.zeros((N, 3), np.float32)
        X[:, 0] = np.arange(N)
        # with unequal batches the mean of batch means depends on the order: constant
        X[:, 1] = 0.5 if constant else _rng(400 + seed).uniform(0, 2, N)
        X[:, 2] = _randn(N, 410 + seed)
        y = np.arange(N)
        rng = np.random.default_rng(420 + seed)
        cases.append(Case(name, (X, y, batch_size, 0.05, rng)))
    return cases


LR_KEY = "every train_step given lr"


def _lr_hint(got, expected, case) -> str:
    if isinstance(got, dict) and got.get(LR_KEY) is False:
        return "pass the learning rate you are given to every step, unchanged."
    return ""


SEED_KEY = "the same rng seed gives the same batches, another seed other batches"


def _batches(impl, X, y, batch_size, lr, seed) -> list[list[int]]:
    net = _Recorder()
    impl(net, X.copy(), y.copy(), batch_size, lr, np.random.default_rng(seed))
    return [list(c[0]) for c in net.calls]


def _run_epoch(impl, X, y, batch_size, lr, rng):
    X0, y0 = X.copy(), y.copy()  # as given (a wrong run may shuffle them in place)
    net = _Recorder()
    seed = int(rng.integers(1 << 30))  # the generator's state decides the order
    rng = np.random.default_rng(seed)
    returned = impl(net, X, y, batch_size, lr, rng)
    ids = [c[0] for c in net.calls]
    first = [list(i) for i in ids]
    # the order must come from rng: the same seed again gives the same batches
    # and (with more than two examples) another seed other batches
    same = _batches(impl, X0, y0, batch_size, lr, seed) == first
    other = len(X) <= 2 or _batches(impl, X0, y0, batch_size, lr, seed + 1) != first
    seen = np.concatenate(ids) if ids else np.zeros(0, int)
    return {
        "the number of train_step calls": len(net.calls),
        "every example used exactly once": bool(
            len(seen) == len(X) and np.array_equal(np.sort(seen), np.arange(len(X)))
        ),
        "rows of X and y kept together": all(
            np.array_equal(i, labels) for i, labels, _ in net.calls
        ),
        "examples shuffled": len(X) == 1 or not np.array_equal(seen, np.arange(len(X))),
        "the largest batch": max((len(i) for i in ids), default=0),
        LR_KEY: all(c[2] == lr for c in net.calls),
        SEED_KEY: bool(same and other),
        "the value returned": returned,
    }


def _epoch(shuffle=True, drop_last=False, same_order=True, reduce=np.mean) -> Callable:
    def train_epoch(net, X, y, batch_size, lr, rng):
        N = len(X)
        order = rng.permutation(N) if shuffle else np.arange(N)
        order_y = order if same_order else rng.permutation(N)
        stop = N - N % batch_size if drop_last else N
        losses = [
            net.train_step(
                X[order[i : i + batch_size]],
                y[order_y[i : i + batch_size]],
                lr,
            )
            for i in range(0, stop, batch_size)
        ]
        return reduce(losses)

    return train_epoch


def _seed_hint(got, expected, case) -> str:
    if isinstance(got, dict) and got.get(SEED_KEY) is False:
        return (
            "draw the order from the generator rng you are given, not from "
            "np.random or a generator of your own: then the same seed gives the "
            "same run, and the caller decides the seed."
        )
    return ""


def train_epoch(student) -> CheckResult:
    """Check ``train_epoch(net, X, y, batch_size, lr, rng)`` with a stand-in net."""
    return run_check(
        "train_epoch",
        student,
        ref.train_epoch,
        [Case(c.name, c.args, run=_run_epoch) for c in _epoch_cases()],
        arg_names=["X", "y", "batch_size", "lr", "rng"],
        hints=[_lr_hint, _seed_hint],
        mistakes=[
            Mistake(
                "the last, smaller batch is missing: start a batch at every multiple "
                "of batch_size below N; a slice that runs past the end of an array "
                "simply stops there.",
                _epoch(drop_last=True),
            ),
            Mistake(
                "shuffle the examples at every epoch: take the order from "
                "`rng.permutation(N)`, then slice batches of it.",
                _epoch(shuffle=False),
            ),
            Mistake(
                "X and y must be shuffled with the *same* permutation, or each "
                "example gets another's label: draw one order and index both with it.",
                _epoch(same_order=False),
            ),
            Mistake(
                "return the mean of the batches' losses, not their sum.",
                _epoch(reduce=np.sum),
            ),
            Mistake(
                "return the mean of all the batches' losses, not the last one.",
                _epoch(reduce=lambda losses: losses[-1]),
            ),
        ],
        record=LAB.record,
    )


# --------------------------------------------------------------------------- together
_PIECES = ("Linear", "ReLU", "Tanh", "SoftmaxCrossEntropy", "Network")

_ADVICE = {
    "Linear": (
        "Training calls forward and backward on the same layer batch after batch: "
        "after each backward, dW and db must be this batch's gradients only (stage 2 "
        "never zeroes them), stored in the layer's grads, where update finds them."
    ),
    "ReLU": (
        "With several ReLU layers in one network, each must keep its own cache (an "
        "attribute of self, not of the class or a global variable)."
    ),
    "Tanh": (
        "With several Tanh layers in one network, each must keep its own cache (an "
        "attribute of self, not of the class or a global variable)."
    ),
    "SoftmaxCrossEntropy": (
        "Its forward must return one number (a Python float or a 0-d value) for "
        "every batch size, and its backward must use what this forward cached."
    ),
    "Network": (
        "forward, backward, update and train_step run again and again on the same "
        "layers: every layer visited, every parameter updated in place, and the "
        "loss of this step returned."
    ),
}


def _net_pieces(impl) -> dict:
    """The classes a network of ``impl`` is built from: its constructor (given in
    the lab) puts the notebook's ``Linear``, activations and loss layer in it."""
    if isinstance(impl, dict):
        return impl
    relu_net = impl([3, 4, 2], "relu", seed=0)
    tanh_net = impl([3, 4, 2], "tanh", seed=0)
    return {
        "Linear": type(relu_net.layers[0]),
        "ReLU": type(relu_net.layers[1]),
        "Tanh": type(tanh_net.layers[1]),
        "SoftmaxCrossEntropy": type(relu_net.loss_layer),
        "Network": impl,
    }


def _build(pieces, sizes, activation, seed):
    """A network of the given pieces with the reference's weights (non-zero biases)."""
    net = object.__new__(pieces["Network"])
    act = pieces["ReLU" if activation == "relu" else "Tanh"]
    net.layers = [
        _make_linear(pieces["Linear"], layer.W, layer.b)
        if isinstance(layer, ref.Linear)
        else act()
        for layer in _reference_layers(sizes, activation, seed)
    ]
    net.loss_layer = pieces["SoftmaxCrossEntropy"]()
    return net


def _run_training(impl, sizes, activation, seed, X, y, lr, batches):
    """``train_step`` batch after batch; every loss and parameter."""
    net = _build(_net_pieces(impl), sizes, activation, seed)
    stores = [layer.params for layer in net.layers]
    arrays = array_refs(stores)  # updated in place, never replaced
    out: dict = {}
    for k, rows in enumerate(batches, start=1):
        loss = net.train_step(X[rows], y[rows], lr)
        out[f"the loss returned at step {k}"] = loss
        for i, store in enumerate(stores):
            for name, value in copy_params(store).items():
                out[f"{name} of layer {i} after step {k}"] = value
        require_in_place(arrays, stores, "layers")
    return out


def _training_cases() -> list[Case]:
    cases = []
    for name, sizes, activation, sizes_b, repeat, seed in [
        (
            "5 -> 6 -> 4 -> 3, relu: batches of 4, 4 and 2, twice",
            [5, 6, 4, 3],
            "relu",
            (4, 4, 2),
            2,
            0,
        ),
        (
            "4 -> 4 -> 4 -> 4, tanh: batches of 4 and 3, three times",
            [4, 4, 4, 4],
            "tanh",
            (4, 3),
            3,
            1,
        ),
    ]:
        N = sum(sizes_b)
        rows = batch_slices(sizes_b)
        X = _randn((N, sizes[0]), 500 + seed)
        y = _labels(N, sizes[-1], 500 + seed)
        cases.append(Case(name, (sizes, activation, seed, X, y, 0.5, rows * repeat)))
    return cases


def training(student) -> CheckResult:
    """Check that the pieces train together: a network built by the student's
    ``Network`` (so with the notebook's ``Linear``, activations and loss layer)
    trained with ``train_step`` on several batches in a row, the last one smaller,
    every loss and parameter compared with the reference's.

    Each exercise's check calls a method once on a fresh object; here the same
    layers go through step after step, as in the training cells, so that a piece
    that keeps state between calls (gradients added up where stage 2 replaces them,
    a cache shared between layers), returns a loss of the wrong kind or rebinds the
    parameters is found, and named.
    """
    run = explain_errors(
        _run_training, student, _PIECES, _net_pieces, ref.Network, _ADVICE
    )
    return run_check(
        "training",
        student,
        ref.Network,
        [Case(c.name, c.args, run=run) for c in _training_cases()],
        hints=[
            diverged_hint(
                _PIECES, _net_pieces, student, ref.Network, _run_training, _ADVICE
            )
        ],
        record=LAB.record,
        hints_first=True,
    )


def summary() -> Summary:
    """The table of lab 2's exercises and which passed."""
    return LAB.summary()
