"""Checks for lab 1: a two-layer network by hand.

Each function takes the student's implementation, compares it with
:mod:`utils.reference.stage1` on seeded cases (including a batch of one, zeros and
negative inputs, and logits of ±1000), and returns a
:class:`~utils.check.core.CheckResult`.

Usage in the lab::

    from utils.check import lab1 as check
    check.relu(relu)
    ...
    check.summary()
"""

from __future__ import annotations

import numpy as np

from utils.check.core import Case, CheckResult, Inputs, Lab, Mistake, Summary, run_check
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
        "sgd_update",
        "train_step",
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
    ]


def _logit_cases() -> list[Case]:
    huge = np.array([[1000.0, 999.0, 998.0], [-1000.0, -999.0, -1001.0]], np.float32)
    return [
        Case("random logits, shape (4, 3)", (_randn((4, 3), 10),)),
        Case("a batch of one, shape (1, 5)", (_randn((1, 5), 11),)),
        Case("logits of ±1000, shape (2, 3)", (huge,)),
        Case("equal logits, shape (3, 4)", (np.zeros((3, 4), np.float32),)),
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
                "that is the derivative (a 0/1 mask); ReLU returns the values "
                "themselves where z > 0: np.maximum(z, 0).",
                lambda z: (z > 0).astype(z.dtype),
            ),
            Mistake(
                "you kept the negative side: ReLU keeps positive values and "
                "replaces negative ones by 0.",
                lambda z: np.minimum(z, 0),
            ),
            Mistake(
                "ReLU sets negative values to 0; it does not take their absolute "
                "value.",
                np.abs,
            ),
        ],
        record=LAB.record,
    )


def relu_grad(student) -> CheckResult:
    """Check ``relu_grad(z)``: 1 where z > 0, else 0 (0 at z = 0)."""
    return run_check(
        "relu_grad",
        student,
        ref.relu_grad,
        _activations_cases(),
        arg_names=["z"],
        mistakes=[
            Mistake(
                "at z = 0 ReLU has a kink; this course takes the derivative there to "
                "be 0, so use z > 0, not z >= 0.",
                lambda z: (z >= 0).astype(z.dtype),
            ),
            Mistake(
                "that is ReLU itself; its derivative is 1 where z > 0 and 0 elsewhere.",
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
                "exp(1000) overflows to inf and inf / inf is NaN: subtract each "
                "row's maximum first, `logits - logits.max(axis=1, keepdims=True)`; "
                "softmax does not change when a row is shifted.",
                lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True),
            ),
            Mistake(
                "subtract each row's own maximum (axis=1, keepdims=True), not the "
                "maximum of the whole array: rows far below it underflow to 0 / 0.",
                _softmax_global_max,
            ),
            Mistake(
                "each row must sum to 1: sum over the classes, "
                "`.sum(axis=1, keepdims=True)`, not over the whole array.",
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
    cases = []
    for name, (N, C), seed in [
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
    return cases


def cross_entropy(student) -> CheckResult:
    """Check ``cross_entropy(probs, y)``: the mean of -log p[i, y_i]."""
    return run_check(
        "cross_entropy",
        student,
        ref.cross_entropy,
        _ce_cases(),
        arg_names=["probs", "y"],
        mistakes=[
            Mistake(
                "0 * log(0) is 0 * -inf = NaN: pick only the correct class's "
                "probability, `probs[np.arange(N), y]`, instead of multiplying by "
                "a one-hot matrix.",
                lambda p, y: (
                    -np.mean(np.sum(ref.one_hot(y, p.shape[1]) * np.log(p), 1))
                ),
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
    return run_check(
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
                "the biases are missing: z1 = X @ W1 + b1 and logits = h1 @ W2 + b2.",
                _forward_mistake(use_b=False),
            ),
            Mistake(
                "you returned the logits; forward returns the probabilities, "
                "softmax(logits).",
                _forward_mistake(output="logits"),
            ),
            Mistake(
                "cache['z1'] must hold the pre-activation z1 (before ReLU): backward "
                "needs it for relu_grad.",
                _forward_mistake(cache_h=True),
            ),
        ],
        record=LAB.record,
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
                "labels (ref: `Y[np.arange(N), y] = 1`).",
                lambda p, y: (p - 1) / p.shape[0],
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
                "db must be summed over the batch, `dz.sum(axis=0)`: b was added to "
                "every row, so every row's gradient flows into it.",
                lambda dz, x, W: (dz @ W.T, x.T @ dz, dz),
            ),
            Mistake(
                "db is the sum over the batch, not the mean: the 1/N is already "
                "inside dz.",
                lambda dz, x, W: (dz @ W.T, x.T @ dz, dz.mean(axis=0)),
            ),
            Mistake(
                "dW is the transpose of what it should be: dW = x.T @ dz has the "
                "shape of W, (in, out).",
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
    return run_check(
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
            may_modify=("params",),
        )
        cases.append(case)
    return run_check(
        "sgd_update",
        student,
        ref.sgd_update,
        cases,
        arg_names=["params", "grads", "lr"],
        output_names=["return value", "params after the update"],
        mistakes=[
            Mistake(
                "params did not change: update the arrays the caller holds, "
                "`params[name] -= lr * grads[name]`; building a new dict (or "
                "rebinding a loop variable) leaves the caller's dict as it was.",
                lambda params, grads, lr: None,
            ),
            Mistake(
                "you moved uphill: gradient descent subtracts, p -= lr * grad.",
                lambda params, grads, lr: ref.sgd_update(params, grads, -lr),
            ),
            Mistake(
                "the learning rate is missing: p -= lr * grad.",
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
        Case(c.name, (*c.args, 0.5), run=_run_train_step, may_modify=("params",))
        for c in _network_cases()
    ]
    return run_check(
        "train_step",
        student,
        ref.train_step,
        cases,
        arg_names=["X", "y", "params", "lr"],
        output_names=["loss", "params after the step"],
        mistakes=[
            Mistake(
                "params did not change: call sgd_update(params, grads, lr) after "
                "backward.",
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
                "the step went uphill: the update must use -lr, p -= lr * grad.",
                lambda X, y, params, lr: ref.train_step(X, y, params, -lr),
            ),
        ],
        record=LAB.record,
    )


def summary() -> Summary:
    """The table of lab 1's exercises and which passed."""
    return LAB.summary()
