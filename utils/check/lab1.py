"""Checks for lab 1: a two-layer network by hand.

Each function takes the student's implementation, compares it with
:mod:`utils.reference.stage1` on seeded cases (a batch of one, N = C first where
integer labels could pass for one-hot rows, zeros and negative inputs, logits of
±1000 and rows hundreds apart, correct classes at probabilities down to 1e-30,
transposed inputs, parameters of one shape) and returns a
:class:`~utils.check.core.CheckResult`.

The last check, :func:`training`, is the integration check: the notebook's
``train_step``, ``forward``, ``cross_entropy``, ``backward`` and ``sgd_update`` run
together for several steps (see :mod:`utils.check.integration`).

Usage in the lab::

    from utils.check import lab1 as check
    check.relu(relu)
    ...
    check.training(train_step)
    check.summary()
"""

from __future__ import annotations

import functools

import numpy as np

from utils.check.core import (
    FLOAT64_HINT,
    Case,
    CheckResult,
    Inputs,
    Lab,
    Mistake,
    Summary,
    _type_name,
    agrees,
    array_refs,
    require_in_place,
    run_check,
)
from utils.check.integration import (
    batch_slices,
    copy_params,
    diverged_hint,
    explain_errors,
    find_global,
)
from utils.check.prereq import blame_earlier
from utils.reference import stage1 as ref

LAB = Lab(
    "Lab 1: a two-layer network by hand",
    [
        "relu",
        "relu_grad",
        "softmax",
        "cross_entropy",
        "forward",
        "softmax_cross_entropy_grad",
        "linear_backward",
        "backward",
        "numerical_gradient",
        "relative_error",
        "sgd_update",
        "train_step",
        "training",
    ],
    references={
        name: getattr(ref, name)
        for name in [
            "relu",
            "relu_grad",
            "softmax",
            "cross_entropy",
            "forward",
            "softmax_cross_entropy_grad",
            "linear_backward",
            "backward",
            "numerical_gradient",
            "relative_error",
            "sgd_update",
            "train_step",
        ]
    },
    module=__name__,
)


_INPUTS = Inputs(base_seed=1000)
_rng, _randn, _labels = _INPUTS.rng, _INPUTS.randn, _INPUTS.labels


def _activations_cases() -> list[Case]:
    with_zeros = _randn((4, 6), 1)
    with_zeros[0, :3] = 0.0  # the derivative at exactly 0 is a choice: we take 0
    with_zeros[2, 1] = 0.0
    return [
        Case("random values, shape (5, 3)", (_randn((5, 3), 0),)),
        Case("exact zeros, shape (4, 6)", (with_zeros,)),
        Case("all negative, shape (2, 4)", (-np.abs(_randn((2, 4), 2)) - 0.1,)),
        Case("a batch of one, shape (1, 7)", (_randn((1, 7), 3, scale=5.0),)),
        Case(
            "a transposed array (not contiguous in memory), shape (6, 3)",
            (_randn((3, 6), 4, scale=2.0).T,),
        ),
    ]


def _logit_cases() -> list[Case]:
    huge = np.array([[1000.0, 999.0, 998.0], [-1000.0, -999.0, -1001.0]], np.float32)
    # rows whose logits are hundreds apart, the largest first, last or in between:
    # shifting by anything but the row's maximum (its mean, its minimum) overflows
    spread = np.array(
        [
            [300.0, 0.0, -300.0, 10.0],
            [-500.0, -20.0, 0.0, 400.0],
            [0.0, 250.0, -250.0, 1.0],
        ],
        np.float32,
    )
    return [
        Case("random logits, shape (4, 3)", (_randn((4, 3), 10),)),
        Case("a batch of one, shape (1, 5)", (_randn((1, 5), 11),)),
        Case("logits of ±1000, shape (2, 3)", (huge,)),
        Case("equal logits, shape (3, 4)", (np.zeros((3, 4), np.float32),)),
        Case("logits hundreds apart within a row, shape (3, 4)", (spread,)),
        Case(
            "a transposed array (not contiguous in memory), shape (5, 2)",
            (_randn((2, 5), 12, 3.0).T,),
        ),
    ]


def _params(D: int, H: int, C: int, seed: int) -> dict[str, np.ndarray]:
    params = ref.init_params(D, H, C, seed=seed)
    params["b1"] = _randn((H,), seed + 50, 0.1)  # non-zero biases: a missing +b shows
    params["b2"] = _randn((C,), seed + 60, 0.1)
    return params


def _network_cases() -> list[Case]:
    """(X, y, params) for a few sizes, including a batch of one."""
    cases = []
    for name, (N, D, H, C), seed in [
        ("N=6, D=5, H=4, C=3", (6, 5, 4, 3), 20),
        ("a batch of one, D=7, H=5, C=2", (1, 7, 5, 2), 21),
        ("N=8, D=25, H=8, C=2", (8, 25, 8, 2), 22),
    ]:
        X = _randn((N, D), seed)
        cases.append(Case(name, (X, _labels(N, C, seed), _params(D, H, C, seed))))
    return cases


def _softmax_shifted_by(shift, z):
    """Softmax with each row shifted by ``shift`` (mean, min) instead of its max."""
    e = np.exp(z - shift(z, axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- checks
def relu(student) -> CheckResult:
    """Check ``relu(z)``: element-wise max(z, 0), a new array."""
    return run_check(
        "relu",
        student,
        ref.relu,
        _activations_cases(),
        arg_names=["z"],
        mistakes=[
            Mistake(
                "that is ReLU's derivative (a 0/1 mask); ReLU itself keeps the "
                "values where z is positive and puts 0 elsewhere.",
                lambda z: (z > 0).astype(z.dtype),
            ),
            Mistake(
                "you kept the negative side: ReLU keeps positive values and "
                "replaces negative ones by 0.",
                lambda z: np.minimum(z, 0),
            ),
            Mistake(
                "the negative values are still there: ReLU replaces every negative "
                "value by 0 and keeps the others.",
                lambda z: z.copy(),
            ),
            Mistake(
                "ReLU sets negative values to 0; it does not take their absolute "
                "value.",
                np.abs,
            ),
        ],
        record=LAB.record,
    )


def _run_mask(impl, z):
    """The derivative, and its dtype: it must be z's (float32). A bool mask is only
    cast in backward's product, and an integer or float64 one would turn the float32
    product dh1 * relu_grad(z1) into float64."""
    out = impl(z)
    dtype = getattr(out, "dtype", None)
    return {
        "the result": out,
        "the dtype of the result": str(dtype) if dtype is not None else "no dtype",
    }


def relu_grad(student) -> CheckResult:
    """Check ``relu_grad(z)``: 1 where z > 0, else 0 (0 at z = 0), with z's dtype,
    float32: a bool, integer or float64 mask fails, like every dtype but the data's."""
    return run_check(
        "relu_grad",
        student,
        ref.relu_grad,
        [Case(c.name, c.args, run=_run_mask) for c in _activations_cases()],
        arg_names=["z"],
        mistakes=[
            Mistake(
                "the mask has an integer dtype: in backward, float32 gradients times "
                "an int64 mask become float64, and so does everything after. Give "
                "the mask the dtype of z: (z > 0).astype(z.dtype).",
                lambda z: (z > 0) * 1,
            ),
            Mistake(
                "the mask is a bool array: the derivative is a number, 1 or 0, with "
                "the dtype of z (float32 here), like every array of the network; a "
                "bool only works where a product casts it for you. Convert it: "
                "(z > 0).astype(z.dtype).",
                lambda z: z > 0,
            ),
            Mistake(
                "the mask is float64: " + FLOAT64_HINT,
                lambda z: (z > 0) * 1.0,
            ),
            Mistake(
                "at z = 0 ReLU has a kink; this course takes the derivative there to "
                "be 0, so use z > 0, not z >= 0.",
                lambda z: (z >= 0).astype(z.dtype),
            ),
            Mistake(
                "that is ReLU itself; its derivative is a mask: 1 where z > 0 and 0 "
                "elsewhere, whatever the size of z.",
                lambda z: np.maximum(z, 0),
            ),
            Mistake(
                "np.sign(z) gives -1 for negative z; the slope of ReLU there is 0.",
                np.sign,
            ),
        ],
        record=LAB.record,
    )


def _softmax_global_max(z):
    e = np.exp(z - z.max())
    return e / e.sum(axis=1, keepdims=True)


def softmax(student) -> CheckResult:
    """Check ``softmax(logits)``: row-wise, stable for logits of ±1000."""
    return run_check(
        "softmax",
        student,
        ref.softmax,
        _logit_cases(),
        arg_names=["logits"],
        mistakes=[
            Mistake(
                "exp(1000) overflows to inf and inf / inf is NaN: shift each row by "
                "its own maximum before the exponential (softmax does not change "
                "when a row is shifted), so the largest exponent is exp(0) = 1.",
                lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True),
            ),
            *(
                Mistake(
                    "shifting each row by its mean (or its minimum) is not enough: "
                    "in a row whose logits are hundreds apart, exp still overflows. "
                    "Shift by the row's maximum: then every exponent is at most "
                    "exp(0) = 1.",
                    functools.partial(_softmax_shifted_by, shift),
                )
                for shift in (np.mean, np.min)
            ),
            Mistake(
                "shift each row by its own maximum (over axis 1, keeping the "
                "dimension), not by the maximum of the whole array: rows far below "
                "it underflow to 0 / 0.",
                _softmax_global_max,
            ),
            Mistake(
                "each row must sum to 1: divide by the sum over that row's classes "
                "(axis 1, keeping the dimension so that it broadcasts), not by the "
                "sum of the whole array.",
                lambda z: (
                    np.exp(z - z.max(axis=1, keepdims=True))
                    / np.exp(z - z.max(axis=1, keepdims=True)).sum()
                ),
            ),
            Mistake(
                "you normalised over the batch (axis=0, columns); softmax "
                "normalises each row (axis=1) over its classes.",
                lambda z: (
                    np.exp(z - z.max(axis=1, keepdims=True))
                    / np.exp(z - z.max(axis=1, keepdims=True)).sum(
                        axis=0, keepdims=True
                    )
                ),
            ),
        ],
        record=LAB.record,
    )


def _ce_cases() -> list[Case]:
    """(probs, y). The first is square (N = C), so that integer labels used as if
    they were one-hot rows broadcast instead of raising, and the hint can say so."""
    cases = []
    for name, (N, C), seed in [
        ("N=4, C=4", (4, 4), 33),
        ("N=5, C=3", (5, 3), 30),
        ("a batch of one, C=4", (1, 4), 31),
        ("N=6, C=4", (6, 4), 32),
    ]:
        probs = ref.softmax(_randn((N, C), seed, 2.0))
        cases.append(Case(name, (probs, _labels(N, C, seed))))
    # zeros in wrong classes are harmless when only the correct class enters
    probs = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.0, 0.8]], np.float32)
    cases.append(
        Case(
            "probabilities of exactly 0 in other classes", (probs, np.array([1, 0, 2]))
        )
    )
    # the correct class far below 1e-3: a floor larger than EPS changes the loss
    tiny = np.array(
        [[1e-6, 0.5, 0.5 - 1e-6], [0.3, 1e-9, 0.7 - 1e-9], [0.6, 0.4, 1e-30]],
        np.float32,
    )
    cases.append(Case(_TINY, (tiny, np.array([0, 1, 2]))))
    return cases


_TINY = "the correct class given probabilities 1e-6, 1e-9 and 1e-30"


def _floor_hint(got, expected, case) -> str:
    if case.name == _TINY and isinstance(got, (float, np.floating)):
        if got < expected:
            return (
                "where the correct class has a tiny probability your loss is too "
                "small: floor the probability at EPS = 1e-12 inside the log, no "
                "higher (a larger floor, or a constant added to every probability, "
                "hides how wrong a confident mistake is)."
            )
        return (
            "where the correct class has a tiny probability your loss is too large: "
            "floor the probability at EPS = 1e-12 inside the log, as the exercise "
            "says, so that a probability that rounds to 0 cannot give an infinite "
            "loss."
        )
    return ""


def cross_entropy(student) -> CheckResult:
    """Check ``cross_entropy(probs, y)``: the mean of -log p[i, y_i]."""
    return run_check(
        "cross_entropy",
        student,
        ref.cross_entropy,
        _ce_cases(),
        arg_names=["probs", "y"],
        hints=[_floor_hint],
        mistakes=[
            Mistake(
                "where the correct class has a tiny probability your loss is too "
                "large: floor the probability at EPS = 1e-12 inside the log, as the "
                "exercise says, so that a probability that rounds to 0 cannot give "
                "an infinite loss.",
                lambda p, y: -np.mean(np.log(p[np.arange(len(y)), y])),
            ),
            Mistake(
                "0 * log(0) is 0 * -inf = NaN: pick only the correct class's "
                "probability in each row (index the rows with their labels), "
                "instead of multiplying by a one-hot matrix.",
                lambda p, y: (
                    -np.mean(np.sum(ref.one_hot(y, p.shape[1]) * np.log(p), 1))
                ),
            ),
            Mistake(
                "probs[:, y] takes, in every row, the columns of all N labels: an "
                "(N, N) array. Each example needs one entry, its own label's: pair "
                "each row index with that row's label.",
                lambda p, y: -np.mean(np.log(np.maximum(p[:, y], ref.EPS))),
            ),
            Mistake(
                "y holds integer labels, one per example, not one-hot rows: "
                "multiplying log(probs) by it scales every column by a label "
                "value. Use each label to pick its row's probability.",
                lambda p, y: -np.mean(np.sum(y * np.log(np.maximum(p, ref.EPS)), 1)),
            ),
            Mistake(
                "you averaged over all N × C entries; average over the N examples "
                "only: sum each row's -log p, then divide by N.",
                lambda p, y: -np.mean(ref.one_hot(y, p.shape[1]) * np.log(p + 1e-12)),
            ),
            Mistake(
                "the loss is the mean over the batch, not the sum: divide by N.",
                lambda p, y: -np.sum(np.log(p[np.arange(len(y)), y] + 1e-12)),
            ),
            Mistake(
                "the loss is -log p (a positive number that shrinks as p → 1): "
                "check the sign.",
                lambda p, y: np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)),
            ),
        ],
        record=LAB.record,
    )


def _forward_mistake(relu_fn=ref.relu, use_b=True, output="probs", cache_h=False):
    def forward(X, params):
        z1 = X @ params["W1"] + (params["b1"] if use_b else 0)
        h1 = relu_fn(z1)
        logits = h1 @ params["W2"] + (params["b2"] if use_b else 0)
        probs = ref.softmax(logits)
        out = probs if output == "probs" else logits
        cache = {"X": X, "z1": h1 if cache_h else z1, "h1": h1, "probs": probs}
        return out, cache

    return forward


def forward(student) -> CheckResult:
    """Check ``forward(X, params)``: returns ``(probs, cache)``."""
    cases = [Case(c.name, c.args[::2]) for c in _network_cases()]  # (X, params)
    return blame_earlier(
        LAB,
        "forward",
        student,
        ("relu", "softmax"),
        lambda record: run_check(
            "forward",
            student,
            ref.forward,
            cases,
            arg_names=["X", "params"],
            output_names=["probs", "cache"],
            mistakes=[
                Mistake(
                    "the hidden layer needs its non-linearity: h1 = relu(z1).",
                    _forward_mistake(relu_fn=lambda z: z),
                ),
                Mistake(
                    "the biases are missing: z1 = X @ W1 + b1 and logits = "
                    "h1 @ W2 + b2.",
                    _forward_mistake(use_b=False),
                ),
                Mistake(
                    "you returned the logits; forward returns the probabilities, "
                    "softmax(logits).",
                    _forward_mistake(output="logits"),
                ),
                Mistake(
                    "cache['z1'] must hold the pre-activation z1 (before ReLU): "
                    "backward needs it for relu_grad.",
                    _forward_mistake(cache_h=True),
                ),
            ],
            record=record,
        ),
    )


def _sce_cases() -> list[Case]:
    return [Case(c.name, c.args) for c in _ce_cases()[:3]]


def softmax_cross_entropy_grad(student) -> CheckResult:
    """Check ``softmax_cross_entropy_grad(probs, y)``: (p - Y) / N."""
    return run_check(
        "softmax_cross_entropy_grad",
        student,
        ref.softmax_cross_entropy_grad,
        _sce_cases(),
        arg_names=["probs", "y"],
        mistakes=[
            Mistake(
                "subtract 1 only at the correct class: p - Y, with Y the one-hot "
                "labels (a 1 in each row, in its label's column).",
                lambda p, y: (p - 1) / p.shape[0],
            ),
            Mistake(
                "y holds integer labels, one per example, not one-hot rows: p - y "
                "subtracts a label value from every entry of a column. Build the "
                "one-hot Y (or subtract 1 at each row's label) first.",
                lambda p, y: (p - y) / p.shape[0],
            ),
            Mistake(
                "the -Y is missing: the gradient of -log p_y with respect to the "
                "logits is p - Y.",
                lambda p, y: p / p.shape[0],
            ),
        ],
        record=LAB.record,
    )


def _linear_cases() -> list[Case]:
    cases = []
    for name, (N, n_in, n_out), seed in [
        ("N=6, in=4, out=3", (6, 4, 3), 40),
        ("a batch of one, in=5, out=2", (1, 5, 2), 41),
        ("N=7, in=3, out=5", (7, 3, 5), 42),
    ]:
        dz = _randn((N, n_out), seed)
        x = _randn((N, n_in), seed + 1)
        W = _randn((n_in, n_out), seed + 2)
        cases.append(Case(name, (dz, x, W)))
    # x as a transposed array (not contiguous in memory), as h1.T-like views are
    x = _randn((4, 5), 44).T
    cases.append(
        Case(
            "N=5, in=4, out=3, x not contiguous in memory",
            (_randn((5, 3), 43), x, _randn((4, 3), 45)),
        )
    )
    return cases


def linear_backward(student) -> CheckResult:
    """Check ``linear_backward(dz, x, W)``: returns ``(dx, dW, db)``."""
    return run_check(
        "linear_backward",
        student,
        ref.linear_backward,
        _linear_cases(),
        arg_names=["dz", "x", "W"],
        output_names=["dx", "dW", "db"],
        mistakes=[
            Mistake(
                "db must be summed over the batch, one entry per output: b was added "
                "to every row, so every row's gradient flows into it.",
                lambda dz, x, W: (dz @ W.T, x.T @ dz, dz),
            ),
            Mistake(
                "db has one entry per output, shape (out,): sum dz over the examples "
                "(the rows, axis 0), not over each example's outputs (axis 1), "
                "which gives one number per example.",
                lambda dz, x, W: (dz @ W.T, x.T @ dz, dz.sum(axis=1)),
            ),
            Mistake(
                "db must have the shape of b, (out,): keepdims=True leaves a "
                "(1, out) row, which the update would broadcast into b's place.",
                lambda dz, x, W: (dz @ W.T, x.T @ dz, dz.sum(axis=0, keepdims=True)),
            ),
            Mistake(
                "db is the sum over the batch, not the mean: the 1/N is already "
                "inside dz.",
                lambda dz, x, W: (dz @ W.T, x.T @ dz, dz.mean(axis=0)),
            ),
            Mistake(
                "dW is the transpose of what it should be: dW has the shape of W, "
                "(in, out), so the product starts with x transposed, (in, N).",
                lambda dz, x, W: (dz @ W.T, dz.T @ x, dz.sum(axis=0)),
            ),
        ],
        record=LAB.record,
    )


def _backward_mistake(scale=1.0, use_relu_grad=True):
    def backward(y, params, cache):
        dlogits = ref.softmax_cross_entropy_grad(cache["probs"], y) * scale
        dh1, dW2, db2 = ref.linear_backward(dlogits, cache["h1"], params["W2"])
        dz1 = dh1 * ref.relu_grad(cache["z1"]) if use_relu_grad else dh1
        _, dW1, db1 = ref.linear_backward(dz1, cache["X"], params["W1"])
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    return backward


def _backward_cases() -> list[Case]:
    cases = []
    for c in _network_cases():
        X, y, params = c.args
        _, cache = ref.forward(X, params)
        cases.append(Case(c.name, (y, params, cache)))
    return cases


def backward(student) -> CheckResult:
    """Check ``backward(y, params, cache)``: the four gradients, in a dict."""
    return blame_earlier(
        LAB,
        "backward",
        student,
        ("relu_grad", "softmax_cross_entropy_grad", "linear_backward"),
        lambda record: run_check(
            "backward",
            student,
            ref.backward,
            _backward_cases(),
            arg_names=["y", "params", "cache"],
            mistakes=[
                Mistake(
                    "ReLU's derivative is missing: dz1 = dh1 * relu_grad(z1), so no "
                    "gradient flows through units that were off.",
                    _backward_mistake(use_relu_grad=False),
                ),
                Mistake(
                    "every gradient is N times too large: the loss is a mean, so "
                    "dlogits = (probs - Y) / N.",
                    lambda y, params, cache: _backward_mistake(scale=len(y))(
                        y, params, cache
                    ),
                ),
            ],
            record=record,
        ),
    )


# ------------------------------------------------------------------ gradient check
def _f_cubic(x: np.ndarray) -> float:
    """A smooth function with a third derivative, so forward differences show."""
    return float(np.sum(x**3) + np.sum(np.sin(2.0 * x)))


def _f_coupled(x: np.ndarray) -> float:
    """Entries interact (a row perturbed at once reads differently from one entry)."""
    B = np.linspace(-1.0, 1.0, x.shape[-1] * 3).reshape(x.shape[-1], 3)
    return float(np.sum((x @ B) ** 2) + np.sum(x**3))


def _f_cubic64(x: np.ndarray) -> float:
    """``_f_cubic`` computed in float64 whatever the dtype of ``x``."""
    return _f_cubic(x.astype(np.float64))


_FUNCTIONS = {"cubic": _f_cubic, "coupled": _f_coupled, "cubic64": _f_cubic64}


_GRAD = "the gradient returned"
_X_AFTER = "x after the call"
_EXACT = "x restored bit for bit"
_GRAD_DTYPE = "the dtype of the gradient"


def _run_numerical_gradient(impl, x, function, h):
    """Call ``impl(f, x, h)`` with ``f`` reading ``x``: the gradient, ``x`` after the
    call, whether ``x`` is back bit for bit (``x + h - 2h + h`` rounds), and the
    gradient's dtype (float64, whatever the dtype of ``x``)."""
    fn = _FUNCTIONS[function]
    before = x.copy()
    grad = impl(lambda: fn(x), x, h)
    exact = bool(
        isinstance(x, np.ndarray)
        and x.shape == before.shape
        and np.array_equal(x, before)  # equal values, not merely close ones
        and np.array_equal(np.signbit(x), np.signbit(before))
    )
    dtype = getattr(grad, "dtype", None)
    return {
        _GRAD: grad,
        _X_AFTER: x,
        _EXACT: exact,
        _GRAD_DTYPE: str(dtype) if dtype is not None else _type_name(grad),
    }


def _numgrad_forward(f, x, h=1e-5):
    grad = np.zeros_like(x, dtype=np.float64)
    f0 = f()
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        grad[i] = (f() - f0) / h
        x[i] = old
    return grad


def _numgrad_one_h(f, x, h=1e-5):
    return ref.numerical_gradient(f, x, h) * 2.0


def _numgrad_not_restored(f, x, h=1e-5):
    grad = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        grad[i] = (f_plus - f()) / (2 * h)
    return grad


def _numgrad_on_copy(f, x, h=1e-5):
    return ref.numerical_gradient(f, x.copy(), h)


def _numgrad_rows(f, x, h=1e-5):
    grad = np.zeros_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        old = x[i].copy()
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def _numgrad_cases() -> list[Case]:
    def x64(shape, seed):
        return _randn(shape, seed).astype(np.float64)

    return [
        Case(
            "x of shape (3, 4), f = sum(x^3) + sum(sin 2x), h=1e-3",
            (x64((3, 4), 200), "cubic", 1e-3),
        ),
        Case(
            "x of shape (2, 5), entries coupled through a matrix, h=1e-4",
            (x64((2, 5), 201), "coupled", 1e-4),
        ),
        Case("a vector x of shape (6,), h=1e-3", (x64((6,), 202), "cubic", 1e-3)),
        Case(
            "x a transposed view (not contiguous), shape (4, 3), h=1e-3",
            (x64((3, 4), 203).T, "coupled", 1e-3),
        ),
        Case("x of shape (1, 1), h=1e-2", (x64((1, 1), 204), "cubic", 1e-2)),
        # float32 x: the gradient is still float64 (np.zeros_like(x) is float32)
        Case(
            "a float32 x of shape (2, 3), f computed in float64, h=1e-2",
            (_randn((2, 3), 205), "cubic64", 1e-2),
        ),
    ]


_NUMGRAD_MISTAKES = [
    (
        "these are forward differences, (f(x + h) - f(x)) / h: their error "
        "shrinks like h, while central differences, nudging each entry both "
        "ways, err like h squared, far less for the same h.",
        _numgrad_forward,
    ),
    (
        "every entry is twice the expected one: the two evaluations are 2h "
        "apart, so the difference is divided by the distance between them.",
        _numgrad_one_h,
    ),
    (
        "x does not hold its original values afterwards: restore each entry "
        "once both evaluations are done, or every later entry (and the caller) "
        "sees a perturbed x.",
        _numgrad_not_restored,
    ),
    (
        "the gradient is zero: f reads the array x itself, so the entries "
        "must be nudged in that array (in place, then restored), not in a "
        "copy.",
        _numgrad_on_copy,
    ),
    (
        "a whole row was nudged at once: the gradient has one entry per entry "
        "of x, each found by nudging that entry alone (loop over every index, "
        "e.g. np.ndindex(x.shape)).",
        _numgrad_rows,
    ),
]

_NUMGRAD_DTYPE_HINT = (
    "the gradient must be a float64 array whatever the dtype of x, as the docstring "
    "says: in float32 the difference of two nearly equal values of f keeps only a "
    "few digits. np.zeros_like(x) (or np.zeros(x.shape, np.float32)) takes x's "
    "float32; create it with dtype=np.float64."
)
_NUMGRAD_EXACT_HINT = (
    "x is back only approximately: in floating point x + h - 2h + h is not always x "
    "(each step rounds), so the caller's array comes back with changed bits. Save "
    "the entry before nudging it and assign that value back: old = x[i]; "
    "x[i] = old + h; ...; x[i] = old - h; ...; x[i] = old."
)


def _numgrad_hint(got, expected, case) -> str:
    """Which mistake the gradient and ``x`` afterwards look like (the values only:
    the exact restore and the dtype are diagnosed once the values agree)."""
    if not isinstance(got, dict):
        return ""
    values_agree = agrees(got.get(_GRAD), expected[_GRAD]) and agrees(
        got.get(_X_AFTER), expected[_X_AFTER]
    )
    if values_agree and got.get(_GRAD_DTYPE) != expected[_GRAD_DTYPE]:
        return _NUMGRAD_DTYPE_HINT
    if values_agree and got.get(_EXACT) is False:
        return _NUMGRAD_EXACT_HINT
    for hint, impl in _NUMGRAD_MISTAKES:
        wrong, _, _ = case.execute(impl)
        if agrees(got.get(_GRAD), wrong[_GRAD]) and agrees(
            got.get(_X_AFTER), wrong[_X_AFTER]
        ):
            return hint
    return ""


def numerical_gradient(student) -> CheckResult:
    """Check ``numerical_gradient(f, x, h)``: central differences, ``x`` restored.

    ``f`` takes no argument and reads ``x``; the gradient of each case is compared
    with the reference's to ``rtol = 1e-7`` (both compute the same float64 formula,
    so a forward difference, off by about ``h``, shows), it must be float64 (a float32
    ``x`` included), and ``x`` must hold its original values afterwards, bit for bit
    (``x[i] += h; ...; x[i] -= 2 * h; ...; x[i] += h`` rounds).
    """
    return run_check(
        "numerical_gradient",
        student,
        ref.numerical_gradient,
        [
            Case(c.name, c.args, run=_run_numerical_gradient, may_modify=("x",))
            for c in _numgrad_cases()
        ],
        arg_names=["x", "function", "h"],
        rtol=1e-7,
        atol=1e-9,
        hints=[_numgrad_hint],
        record=LAB.record,
    )


def _relerr_max_ratio(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-300)))


def _relerr_over_b(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _relerr_max_norm(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denom = max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)
    return float(np.linalg.norm(a - b) / denom)


def _relerr_norm_of_sum(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a + b), 1e-300))


def _relerr_float32(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(
        np.linalg.norm(a - b)
        / max(np.linalg.norm(a) + np.linalg.norm(b), np.float32(1e-30))
    )


def _relerr_no_floor(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b)))


def _relerr_cases() -> list[Case]:
    a = _randn((4, 3), 210).astype(np.float64)
    tiny = np.array([1.0, 2.0, 1e-10, -0.5]), np.array([1.0, 2.0, 2e-10, -0.5])
    big = (np.full((2, 3), 3e20, np.float32), np.full((2, 3), 1e20, np.float32))
    return [
        Case(
            "a (4, 3) gradient against one half as large",
            (a, 0.5 * a + 1e-3 * np.cos(a)),
        ),
        Case("one entry of 1e-10 against 2e-10, the rest equal", tiny),
        Case(
            "two unrelated (3, 4) arrays of mixed signs (not parallel)",
            (_randn((3, 4), 211).astype(np.float64), _randn((3, 4), 212) * 2.0),
        ),
        Case(
            "two orthogonal vectors, [1, 0] against [0, 1] (not parallel)",
            (np.array([1.0, 0.0]), np.array([0.0, 1.0])),
        ),
        Case("a gradient against its negative", (a[2], -a[2])),
        Case("a gradient against zeros", (a[0], np.zeros(3))),
        Case("two zero arrays", (np.zeros((2, 2)), np.zeros((2, 2)))),
        Case(
            "float32 arrays of 3e20 against 1e20 (their squares overflow float32)", big
        ),
        Case(
            "gradients of size 1e6 that differ by 1e-4 relative",
            (a[1:3] * 1e6, a[1:3] * (1e6 + 100.0)),
        ),
    ]


def relative_error(student) -> CheckResult:
    """Check ``relative_error(a, b)``: the course's norm-based metric.

    ``||a - b|| / max(||a|| + ||b||, tiny)`` over all entries, in float64: compared
    to ``rtol = 1e-6``, ``atol = 0`` (its values are often far below the usual
    absolute tolerance: 1e-10 must not read as 0).
    """
    return run_check(
        "relative_error",
        student,
        ref.relative_error,
        _relerr_cases(),
        arg_names=["a", "b"],
        rtol=1e-6,
        atol=0.0,
        mistakes=[
            Mistake(
                "this looks like the largest entry-wise ratio: the course's metric "
                "compares whole arrays, with norms over all entries, so that one "
                "tiny entry (mostly rounding noise) cannot dominate.",
                _relerr_max_ratio,
            ),
            Mistake(
                "the denominator is the norm of b alone: the metric is symmetric, the "
                "difference over the sum of both norms, so neither array is taken as "
                "the truth and the value stays at most 1.",
                _relerr_over_b,
            ),
            Mistake(
                "the denominator is the larger of the two norms: the metric divides "
                "by the sum of both norms.",
                _relerr_max_norm,
            ),
            Mistake(
                "the denominator is the norm of a + b: that equals ||a|| + ||b|| only "
                "when a and b point the same way. The metric divides by the sum of "
                "the two norms, ||a|| + ||b||, each taken on its own.",
                _relerr_norm_of_sum,
            ),
            Mistake(
                "two zero arrays give 0 / 0: floor the denominator at a tiny positive "
                "number, so that equal arrays read 0.",
                _relerr_no_floor,
            ),
            Mistake(
                "the arithmetic ran in float32, whose squares overflow above about "
                "1e19: convert both arrays to float64 first.",
                _relerr_float32,
            ),
        ],
        record=LAB.record,
    )


def _run_update(impl, params, grads, lr):
    out = impl(params, grads, lr)
    return out, params


def sgd_update(student) -> CheckResult:
    """Check ``sgd_update(params, grads, lr)``: updates ``params`` in place."""
    cases = []
    for c in _network_cases()[:2]:
        _, _, params = c.args
        grads = {k: _randn(v.shape, 70 + i) for i, (k, v) in enumerate(params.items())}
        case = Case(
            f"{c.name}, lr=0.1",
            (params, grads, 0.1),
            run=_run_update,
            in_place=("params",),
        )
        cases.append(case)
    # two parameters of one shape: nothing may be looked up by shape
    params = {"W1": _randn((4, 4), 80), "b1": _randn((4,), 81)}
    params.update(W2=_randn((4, 4), 82), b2=_randn((4,), 83))
    grads = {k: _randn(v.shape, 90 + i) for i, (k, v) in enumerate(params.items())}
    cases.append(
        Case(
            "W1 and W2 of one shape (4, 4), lr=0.5",
            (params, grads, 0.5),
            run=_run_update,
            in_place=("params",),
        )
    )
    return run_check(
        "sgd_update",
        student,
        ref.sgd_update,
        cases,
        arg_names=["params", "grads", "lr"],
        output_names=["return value", "params after the update"],
        mistakes=[
            Mistake(
                "params did not change: the update must change the arrays that the "
                "caller's dict holds; building a new dict, or rebinding a loop "
                "variable, leaves the caller's arrays as they were.",
                lambda params, grads, lr: None,
            ),
            Mistake(
                "you moved uphill: gradient descent steps against the gradient.",
                lambda params, grads, lr: ref.sgd_update(params, grads, -lr),
            ),
            Mistake(
                "the learning rate is missing: the step is the gradient scaled by lr.",
                lambda params, grads, lr: ref.sgd_update(params, grads, 1.0),
            ),
        ],
        record=LAB.record,
    )


def _run_train_step(impl, X, y, params, lr):
    loss = impl(X, y, params, lr)
    return loss, params


def _train_step_loss_after(X, y, params, lr):
    ref.train_step(X, y, params, lr)
    return ref.cross_entropy(ref.forward(X, params)[0], y)


def train_step(student) -> CheckResult:
    """Check ``train_step(X, y, params, lr)``: returns the loss, updates params."""
    cases = [
        Case(c.name, (*c.args, 0.5), run=_run_train_step, in_place=("params",))
        for c in _network_cases()
    ]
    return blame_earlier(
        LAB,
        "train_step",
        student,
        ("forward", "cross_entropy", "backward", "sgd_update"),
        lambda record: run_check(
            "train_step",
            student,
            ref.train_step,
            cases,
            arg_names=["X", "y", "params", "lr"],
            output_names=["loss", "params after the step"],
            mistakes=[
                Mistake(
                    "params did not change: after backward, the step must apply the "
                    "update to params (your sgd_update does it).",
                    lambda X, y, params, lr: ref.cross_entropy(
                        ref.forward(X, params)[0], y
                    ),
                ),
                Mistake(
                    "return the loss computed in this step's forward pass, before the "
                    "update, not a loss recomputed afterwards.",
                    _train_step_loss_after,
                ),
                Mistake(
                    "the step went uphill: the update must go against the gradient.",
                    lambda X, y, params, lr: ref.train_step(X, y, params, -lr),
                ),
            ],
            record=record,
        ),
    )


# --------------------------------------------------------------------------- training
_PIECES = ("forward", "cross_entropy", "backward", "sgd_update", "train_step")

_ADVICE = {
    "forward": (
        "Here it runs on batch after batch, some of them slices of a larger array: "
        "it must depend on X and params only, and return new arrays every call."
    ),
    "cross_entropy": (
        "A loss must be one number at every step, a Python float or a 0-d NumPy "
        "value, for every batch size, the batch of one included."
    ),
    "backward": (
        "It must return this batch's gradients only: nothing kept from an earlier "
        "call, and nothing changed in the cache or in params."
    ),
    "sgd_update": (
        "Step after step it must change the caller's arrays in place (a new array "
        "put in the dict is not the caller's) and keep them float32."
    ),
    "train_step": (
        "Forward, loss, backward, update, on the batch and the params it is given "
        "(not on global variables), returning the loss of this step's forward pass."
    ),
}


def _training_pieces(impl) -> dict:
    """The pieces that ``train_step`` uses: the notebook's, or the reference's."""
    if isinstance(impl, dict):
        return impl
    pieces = {
        name: find_global(impl, name, getattr(ref, name)) for name in _PIECES[:-1]
    }
    pieces["train_step"] = impl
    return pieces


def _run_training(impl, X, y, params, lr, batches):
    """Train with ``impl``'s pieces, batch after batch; every loss and parameter."""
    pieces = _training_pieces(impl)
    arrays = array_refs(params)  # the caller's arrays: updated in place, never replaced
    out: dict = {}
    for k, rows in enumerate(batches, start=1):
        Xb, yb = X[rows], y[rows]  # slices: views of X and y
        if pieces["train_step"] is ref.train_step:  # composed from the pieces
            probs, cache = pieces["forward"](Xb, params)
            loss = pieces["cross_entropy"](probs, yb)
            grads = pieces["backward"](yb, params, cache)
            pieces["sgd_update"](params, grads, lr)
        else:
            loss = pieces["train_step"](Xb, yb, params, lr)
        out[f"the loss returned at step {k}"] = loss
        for name, value in copy_params(params).items():
            out[f"{name} after step {k}"] = value
        require_in_place(arrays, params, "params")
    return out


def _training_cases() -> list[Case]:
    cases = []
    for name, (N, D, H, C), sizes, seed in [
        (
            "10 examples, D=5, H=6, C=3: batches of 6, 3 and 1, twice",
            (10, 5, 6, 3),
            (6, 3, 1),
            100,
        ),
        (
            "7 examples, D=4, H=4, C=4: batches of 4 and 3, three times",
            (7, 4, 4, 4),
            (4, 3),
            110,
        ),
    ]:
        batches = batch_slices(sizes) * (2 if len(sizes) == 3 else 3)
        X = _randn((N, D), seed)
        params = _params(D, H, C, seed)
        cases.append(Case(name, (X, _labels(N, C, seed), params, 0.5, batches)))
    return cases


def training(student) -> CheckResult:
    """Check that the pieces train together: ``train_step`` (with the notebook's
    ``forward``, ``cross_entropy``, ``backward`` and ``sgd_update``) for several
    steps on batches of different sizes, every loss and parameter compared.

    Each exercise's check calls it once on fresh inputs; here the same ``params``
    go through step after step, as in the training cells, so that a piece that
    keeps state between calls, returns a loss of the wrong kind or replaces the
    caller's arrays is found, and named.
    """
    run = explain_errors(
        _run_training, student, _PIECES, _training_pieces, ref.train_step, _ADVICE
    )
    cases = [
        Case(c.name, c.args, run=run, may_modify=("arg2",)) for c in _training_cases()
    ]
    return blame_earlier(
        LAB,
        "training",
        student,
        [(piece, None) for piece in _TRAINING_USES],  # reached through train_step
        lambda record: _training_result(student, cases, record),
        even_if_passed=True,
    )


# every exercise train_step reaches, in the lab's order
_TRAINING_USES = (
    "relu",
    "relu_grad",
    "softmax",
    "cross_entropy",
    "forward",
    "softmax_cross_entropy_grad",
    "linear_backward",
    "backward",
    "sgd_update",
)


def _training_result(student, cases, record) -> CheckResult:
    return run_check(
        "training",
        student,
        ref.train_step,
        cases,
        hints=[
            diverged_hint(
                _PIECES,
                _training_pieces,
                student,
                ref.train_step,
                _run_training,
                _ADVICE,
            )
        ],
        record=record,
        hints_first=True,
    )


def summary() -> Summary:
    """The table of lab 1's exercises and which passed."""
    return LAB.summary()
