"""Stage 1: a two-layer network written out by hand.

The reference implementation for chapter 1 and lab 1. Every variable has a name
(``W1, b1, W2, b2``, ``z1, h1, logits, probs``) and every gradient is written by hand:

    z1 = X @ W1 + b1        (N, H)   affine
    h1 = relu(z1)           (N, H)
    logits = h1 @ W2 + b2   (N, C)   affine
    probs = softmax(logits) (N, C)
    loss = mean_i -log probs[i, y_i]

Backward, with Y the one-hot labels:

    dlogits = (probs - Y) / N           softmax + cross-entropy, the 1/N of the mean
    dW2 = h1.T @ dlogits, db2 = sum_i dlogits[i]
    dh1 = dlogits @ W2.T
    dz1 = dh1 * relu'(z1)
    dW1 = X.T @ dz1,      db1 = sum_i dz1[i]

References:
    Goodfellow, Bengio, Courville, *Deep Learning* (2016), sections 6.2-6.5.
    Karpathy, CS231n notes "Backpropagation, intuitions".
"""

from __future__ import annotations

import numpy as np

Params = dict[str, np.ndarray]
Cache = dict[str, np.ndarray]

EPS = 1e-12  # floor for probabilities inside log: log(0) would be -inf


def init_params(
    n_in: int, n_hidden: int, n_out: int, *, seed: int = 0, dtype=np.float32
) -> Params:
    """He-initialised weights and zero biases for a two-layer network.

    ``W ~ N(0, 2 / fan_in)`` keeps the variance of the activations roughly constant
    through a ReLU layer (He et al., 2015).

    Args:
        n_in: input size D.
        n_hidden: hidden size H.
        n_out: number of classes C.
        seed: seed of the generator, so that runs are repeatable.
        dtype: float32 by default.

    Returns:
        ``{"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}``.
    """
    rng = np.random.default_rng(seed)
    return {
        "W1": (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2.0 / n_in)).astype(
            dtype
        ),
        "b1": np.zeros(n_hidden, dtype=dtype),
        "W2": (rng.standard_normal((n_hidden, n_out)) * np.sqrt(2.0 / n_hidden)).astype(
            dtype
        ),
        "b2": np.zeros(n_out, dtype=dtype),
    }


def relu(z: np.ndarray) -> np.ndarray:
    """``max(z, 0)`` element-wise; a new array, ``z`` untouched."""
    return np.maximum(z, 0)


def relu_grad(z: np.ndarray) -> np.ndarray:
    """Derivative of ReLU at ``z``: 1 where ``z > 0``, else 0 (we choose 0 at 0)."""
    return (z > 0).astype(z.dtype)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for any logits.

    ``softmax(z) = softmax(z - c)`` for any constant c per row; with ``c = max(z)``
    the largest exponent is ``exp(0) = 1``, so nothing overflows.

    Args:
        logits: (N, C).

    Returns:
        (N, C) probabilities, each row summing to 1.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C), max of a row is 0
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def cross_entropy(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-probability of the correct class.

    ``L = -(1/N) sum_i log p[i, y_i]``; only the correct class's probability enters,
    so zeros elsewhere are harmless. ``p`` is floored at ``EPS`` to keep ``log`` finite.

    Args:
        probs: (N, C) probabilities.
        y: (N,) integer labels in [0, C).

    Returns:
        The loss, a Python float.
    """
    N = probs.shape[0]
    p_correct = probs[np.arange(N), y]  # (N,)
    return float(-np.mean(np.log(np.maximum(p_correct, EPS))))


def one_hot(y: np.ndarray, num_classes: int, dtype=np.float32) -> np.ndarray:
    """(N,) integer labels to (N, C) one-hot rows."""
    Y = np.zeros((y.shape[0], num_classes), dtype=dtype)
    Y[np.arange(y.shape[0]), y] = 1
    return Y


def forward(X: np.ndarray, params: Params) -> tuple[np.ndarray, Cache]:
    """Forward pass: affine, ReLU, affine, softmax.

    Args:
        X: (N, D) inputs.
        params: ``W1, b1, W2, b2``.

    Returns:
        ``probs`` (N, C) and the cache ``{"X", "z1", "h1", "probs"}`` that backward
        needs (so that backward recomputes nothing).
    """
    z1 = X @ params["W1"] + params["b1"]  # (N, H)
    h1 = relu(z1)  # (N, H)
    logits = h1 @ params["W2"] + params["b2"]  # (N, C)
    probs = softmax(logits)  # (N, C)
    cache = {"X": X, "z1": z1, "h1": h1, "probs": probs}
    return probs, cache


def softmax_cross_entropy_grad(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of the mean cross-entropy with respect to the logits.

    ``dL/dlogits = (p - Y) / N``: the softmax Jacobian and the derivative of the log
    cancel, and the mean over the batch contributes the 1/N.

    Args:
        probs: (N, C) softmax output.
        y: (N,) integer labels.

    Returns:
        (N, C) gradient.
    """
    N = probs.shape[0]
    grad = probs.copy()  # (N, C); subtracting Y only changes the label's entry
    grad[np.arange(N), y] -= 1  # an index, not an (N, C) one-hot matrix
    grad /= N
    return grad


def linear_backward(
    dz: np.ndarray, x: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of an affine map ``z = x @ W + b``.

    Args:
        dz: (N, out) gradient of the loss with respect to z.
        x: (N, in) the layer's input.
        W: (in, out) the weights.

    Returns:
        ``dx`` (N, in) = dz @ W.T, ``dW`` (in, out) = x.T @ dz,
        ``db`` (out,) = sum of dz over the batch (b was added to every row).
    """
    dx = dz @ W.T  # (N, in)
    dW = x.T @ dz  # (in, out)
    db = dz.sum(axis=0)  # (out,)
    return dx, dW, db


def backward(y: np.ndarray, params: Params, cache: Cache) -> Params:
    """Backward pass: every gradient of the mean cross-entropy, by hand.

    Args:
        y: (N,) integer labels.
        params: the weights used in forward.
        cache: what forward saved.

    Returns:
        ``{"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}``, same shapes as params.
    """
    dlogits = softmax_cross_entropy_grad(cache["probs"], y)  # (N, C)
    dh1, dW2, db2 = linear_backward(dlogits, cache["h1"], params["W2"])  # (N, H)
    dz1 = dh1 * relu_grad(cache["z1"])  # (N, H), ReLU passes gradient where z1 > 0
    # X is the data, not something we learn: its gradient dz1 @ W1.T would be
    # computed for nothing (the largest product of backward), so only dW1 and db1
    dW1 = cache["X"].T @ dz1  # (D, H)
    db1 = dz1.sum(axis=0)  # (H,)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def sgd_update(params: Params, grads: Params, lr: float) -> None:
    """One step of gradient descent, in place: ``p <- p - lr * dL/dp``."""
    for name in params:
        params[name] -= lr * grads[name]


def train_step(X: np.ndarray, y: np.ndarray, params: Params, lr: float) -> float:
    """Forward, loss, backward, update. Returns the loss *before* the update."""
    probs, cache = forward(X, params)
    loss = cross_entropy(probs, y)
    grads = backward(y, params, cache)
    sgd_update(params, grads, lr)
    return loss


def predict(X: np.ndarray, params: Params) -> np.ndarray:
    """Most probable class for each row of X: (N,) integers."""
    probs, _ = forward(X, params)
    return probs.argmax(axis=1)


def accuracy(X: np.ndarray, y: np.ndarray, params: Params) -> float:
    """Fraction of rows of X classified correctly."""
    return float(np.mean(predict(X, params) == y))


def loss_fn(X: np.ndarray, y: np.ndarray, params: Params) -> float:
    """The loss as a function of the parameters, for the numerical gradient check."""
    probs, _ = forward(X, params)
    return cross_entropy(probs, y)


def numerical_gradient(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences ``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every entry.

    ``f`` takes no argument and reads ``x``, which is perturbed in place and restored.
    Use float64 here: with float32, ``h`` must be large and the estimate is coarse.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


GRAD_CHECK_BOUND = 1e-6
"""The bound of every gradient check in the course: :func:`relative_error` of a
correct backward against :func:`numerical_gradient` (float64, ``h = 1e-5``) reads
about 1e-10 to 1e-8, far below it; a wrong one reads 1e-2 or more."""


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """The course's one metric for gradient checks, norms over all entries.

    ``||a - b|| / max(||a|| + ||b||, tiny)``: scale-free (a gradient and its
    estimate 1000 times larger read the same), 0 for equal arrays, at most 1, and
    not thrown off by one tiny entry, which an entry-wise ratio is (two estimates of
    a gradient entry of 1e-10 are mostly rounding noise). Agreement means below
    :data:`GRAD_CHECK_BOUND` = 1e-6. Stages 2, 3 and 4 use this function.

    Args:
        a: one gradient, any shape.
        b: the other, same number of entries.

    Returns:
        The relative error, a Python float in [0, 1].
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    denom = max(float(np.linalg.norm(a) + np.linalg.norm(b)), 1e-300)
    return float(np.linalg.norm(a - b) / denom)
