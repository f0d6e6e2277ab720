"""Stage 2: a network built from layers, each with its own forward and backward.

The reference implementation for chapter 2 and lab 2. Stage 1 named every variable
(``W1, z1, h1, ...``), so a third layer meant rewriting forward and backward. Here
every layer is an object that caches, in ``forward``, what its ``backward`` needs;
a network is a list of layers, forward is a loop over it and backward the same loop
reversed::

    x -> Linear -> ReLU -> Linear -> ReLU -> Linear -> logits -> SoftmaxCrossEntropy
    dx <- ...  <- backward(dout) ...          <- dlogits = (p - Y) / N

Each layer's ``backward(dout)`` receives dL/d(output) and returns dL/d(input), the
chain rule applied locally; a layer with parameters also stores dL/d(parameter) in
``grads``. Everything is float32 by default and vectorized over the batch.

References:
    Rumelhart, Hinton, Williams, "Learning representations by back-propagating
    errors", Nature 323 (1986).
    Glorot, Bengio, "Understanding the difficulty of training deep feedforward
    neural networks", AISTATS (2010): the uniform initialisation with
    Var(W) = 2 / (fan_in + fan_out).
    He, Zhang, Ren, Sun, "Delving deep into rectifiers", ICCV (2015): the normal
    initialisation with Var(W) = 2 / fan_in for ReLU networks.
    Goodfellow, Bengio, Courville, *Deep Learning* (2016), sections 6.5 and 8.4.
    Bridle, "Probabilistic interpretation of feedforward classification network
    outputs" (1990): softmax with cross-entropy, whose gradient is p - y.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# Stage 1's pieces, re-exported: the chapter, the lab and the checks use them from here
from utils.reference.stage1 import EPS as EPS
from utils.reference.stage1 import GRAD_CHECK_BOUND as GRAD_CHECK_BOUND
from utils.reference.stage1 import numerical_gradient as numerical_gradient
from utils.reference.stage1 import one_hot as one_hot
from utils.reference.stage1 import relative_error as relative_error
from utils.reference.stage1 import softmax as softmax

Initializer = Callable[[int, int, np.random.Generator], np.ndarray]


# --------------------------------------------------------------------------- init
def zeros(
    fan_in: int, fan_out: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """All-zero weights: a bad idea, kept to show why.

    Every unit of a layer computes the same function and receives the same gradient,
    so they stay identical forever (the symmetry is never broken). With ReLU or tanh
    it is worse: every weight gradient is exactly 0, the first layer's because its
    ``dz`` is 0 (``dx = dz @ W.T`` of the zero layer above), the others' because
    their input is ``relu(0) = 0``, and only the last bias learns.

    Args:
        fan_in: inputs of the layer.
        fan_out: outputs of the layer.
        rng: unused; accepted so that every initialiser has the same signature.

    Returns:
        (fan_in, fan_out) float32 zeros.
    """
    return np.zeros((fan_in, fan_out), dtype=np.float32)


def glorot_uniform(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Glorot/Xavier uniform initialisation (Glorot & Bengio, 2010).

    ``W ~ U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``, so that
    ``Var(W) = a^2 / 3 = 2 / (fan_in + fan_out)``: the compromise between keeping the
    variance of the activations (``1 / fan_in``) and of the gradients
    (``1 / fan_out``) constant through a linear or tanh layer.

    Args:
        fan_in: inputs of the layer.
        fan_out: outputs of the layer.
        rng: the random generator to draw from.

    Returns:
        (fan_in, fan_out) float32.
    """
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def he_normal(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """He/Kaiming normal initialisation (He et al., 2015).

    ``W ~ N(0, 2 / fan_in)``: ReLU zeroes half of its inputs, halving the second
    moment, and the factor 2 makes up for it, so the scale of the activations stays
    constant through a deep ReLU stack. The same draws as stage 1's ``init_params``.

    Args:
        fan_in: inputs of the layer.
        fan_out: outputs of the layer.
        rng: the random generator to draw from.

    Returns:
        (fan_in, fan_out) float32.
    """
    std = np.sqrt(2.0 / fan_in)
    return (rng.standard_normal((fan_in, fan_out)) * std).astype(np.float32)


INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "glorot": glorot_uniform,
    "glorot_uniform": glorot_uniform,
    "xavier": glorot_uniform,
    "he": he_normal,
    "he_normal": he_normal,
    "kaiming": he_normal,
}


def get_initializer(init: str | Initializer) -> Initializer:
    """An initialiser by name (``"zeros"``, ``"glorot"``, ``"he"``) or as given."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ValueError(
            f"unknown init {init!r}; choose one of {sorted(INITIALIZERS)} or pass "
            "a function (fan_in, fan_out, rng) -> array"
        ) from None


# --------------------------------------------------------------------------- layers
class Layer:
    """A differentiable block: ``forward(x) -> out``, ``backward(dout) -> dx``.

    ``forward`` caches what ``backward`` needs; ``backward`` takes dL/d(out), the
    gradient of the loss with respect to this layer's output, and returns
    dL/d(x) = dL/d(out) · d(out)/d(x). A layer with parameters keeps them in
    ``params`` and, after ``backward``, their gradients in ``grads`` (same keys,
    same shapes). Activations have neither: both dicts are empty.
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _alias(store: str, key: str) -> property:
    """An attribute that reads and writes ``self.<store>[key]``."""

    def get(self) -> np.ndarray:
        return getattr(self, store)[key]

    def set_(self, value: np.ndarray) -> None:
        getattr(self, store)[key] = value

    return property(get, set_, doc=f"``{store}[{key!r}]``")


class Linear(Layer):
    """Affine layer ``z = x @ W + b``.

    Shapes: x (N, in), W (in, out), b (out,), z (N, out). Backward, with
    ``dz = dL/dz`` (N, out)::

        dW = x.T @ dz        (in, out)   each example adds its outer product
        db = dz.sum(axis=0)  (out,)      b was added to every row
        dx = dz @ W.T        (N, in)

    ``W``, ``b``, ``dW`` and ``db`` are the arrays in ``params`` and ``grads``
    (properties), so updating one updates the other.

    ``input_grad=False`` is for a first layer, whose input is the data: nothing
    learns the data, so nothing uses ``dx``, and ``dx = dz @ W.T`` is as costly as
    ``dW`` (for a 784-pixel input, the largest product of the whole backward pass).
    Such a layer skips it and ``backward`` returns ``None``, as PyTorch does for an
    input that does not require a gradient.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        init: str | Initializer = "he",
        seed: int = 0,
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float32,
        input_grad: bool = True,
    ) -> None:
        """Create the weights.

        Args:
            in_features: size of each input row.
            out_features: size of each output row.
            init: ``"he"`` (default), ``"glorot"``, ``"zeros"`` or a function
                ``(fan_in, fan_out, rng) -> (fan_in, fan_out) array``.
            seed: seed of the generator, when no ``rng`` is given.
            rng: a generator to draw from (a network shares one between layers).
            dtype: float32 by default; float64 for gradient checks.
            input_grad: whether ``backward`` returns ``dx``; ``False`` for a layer
                whose input is the data (it then returns ``None``).
        """
        super().__init__()
        rng = np.random.default_rng(seed) if rng is None else rng
        W = get_initializer(init)(in_features, out_features, rng)
        self.params["W"] = np.asarray(W, dtype=dtype)  # (in, out)
        self.params["b"] = np.zeros(out_features, dtype=dtype)  # (out,)
        self.grads["W"] = np.zeros_like(self.params["W"])
        self.grads["b"] = np.zeros_like(self.params["b"])
        self.x: np.ndarray | None = None
        self.input_grad = input_grad

    W = _alias("params", "W")
    b = _alias("params", "b")
    dW = _alias("grads", "W")
    db = _alias("grads", "b")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``z = x @ W + b``; caches the input ``x``, which ``dW`` needs.

        Args:
            x: (N, in).

        Returns:
            (N, out).
        """
        self.x = x  # (N, in)
        z = x @ self.W  # (N, out), a new array
        z += self.b  # in place: no second (N, out) array
        return z

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Store ``dW = x.T @ dout`` and ``db = sum_i dout[i]``; return ``dout @ W.T``.

        Args:
            dout: (N, out) gradient of the loss with respect to the output z.

        Returns:
            (N, in) gradient with respect to the input x; ``None`` when the layer
            has ``input_grad=False``.
        """
        self.dW = self.x.T @ dout  # (in, out)
        self.db = dout.sum(axis=0)  # (out,)
        if not self.input_grad:
            return None  # the input is the data: no one needs dx
        return dout @ self.W.T  # (N, in)

    def __repr__(self) -> str:
        n_in, n_out = self.W.shape
        flag = "" if self.input_grad else ", input_grad=False"
        return f"Linear({n_in}, {n_out}{flag})"


class ReLU(Layer):
    """``relu(x) = max(x, 0)``; derivative 1 where x > 0, else 0 (0 at 0).

    Caches the output: ``out > 0`` exactly where ``x > 0``.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.maximum(x, 0)  # (N, D)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (self.out > 0)  # (N, D), gradient flows only where the unit is on


class Sigmoid(Layer):
    """``sigmoid(x) = 1 / (1 + exp(-x))``, derivative ``s (1 - s)``.

    The naive formula overflows: ``exp(-x)`` is ``inf`` for ``x = -1000``. With
    ``e = exp(-|x|)``, which is in (0, 1] and never overflows,
    ``sigmoid(x) = 1 / (1 + e)`` for x >= 0 and ``e / (1 + e)`` for x < 0 (multiply
    the numerator and denominator of the naive formula by ``exp(x)``). Caches the
    output, all the derivative needs.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(-np.abs(x))  # (N, D), in (0, 1]
        self.out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))  # (N, D)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        s = self.out
        return dout * s * (1 - s)  # (N, D)


class Tanh(Layer):
    """``tanh(x)``, derivative ``1 - tanh(x)^2``.

    ``np.tanh`` is stable (it saturates at ±1 without overflow), unlike
    ``(exp(x) - exp(-x)) / (exp(x) + exp(-x))``, which is ``inf / inf = NaN`` at
    ±1000. Caches the output, all the derivative needs.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.tanh(x)  # (N, D)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1 - self.out**2)  # (N, D)


class Softmax(Layer):
    """Softmax over each row, as a layer of its own.

    Its Jacobian is ``ds_j / dx_k = s_j (delta_jk - s_k)`` for each row, a full C x C
    matrix. Backward never builds it: the Jacobian-vector product is

        dx_k = sum_j dout_j s_j (delta_jk - s_k) = s_k (dout_k - sum_j dout_j s_j),

    computed from the cached output ``s`` in O(N C).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = softmax(x)  # (N, C)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        s = self.out  # (N, C)
        return s * (dout - np.sum(dout * s, axis=1, keepdims=True))  # (N, C)


# --------------------------------------------------------------------------- losses
class SoftmaxCrossEntropy:
    """Softmax followed by the mean cross-entropy, fused into one loss layer.

    ``L = -(1/N) sum_i log p[i, y_i]`` with ``p = softmax(logits)``. The softmax
    Jacobian and the derivative of the log cancel, leaving

        dL/dlogits = (p - Y) / N        (Y the one-hot labels)

    which is cheaper and more accurate than ``Softmax.backward`` applied to the
    gradient of the cross-entropy with respect to ``p``, ``-Y / (N p)``.

    The loss is computed from the logits, not from ``p``: with ``m = max_j z_j``,
    ``log p_j = (z_j - m) - log sum_k exp(z_k - m)`` (log-sum-exp), which is exact
    and finite for any logits. ``log(p)`` of a probability that underflowed to 0
    would need a floor (stage 1's ``EPS``) and cap the loss near
    ``-log(EPS) = 27.6`` for an example whose logits are hundreds apart; here it is
    the true value, as in PyTorch's ``cross_entropy``. The probabilities and the
    gradient are exactly stage 1's ``softmax`` and ``softmax_cross_entropy_grad``.
    """

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        """The mean cross-entropy; caches the probabilities and the labels.

        Args:
            logits: (N, C) scores.
            y: (N,) integer labels, or (N, C) one-hot (or any probability) rows.

        Returns:
            The loss, a Python float.
        """
        shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C), row max 0
        exp = np.exp(shifted)  # (N, C), at most 1: no overflow
        sum_exp = exp.sum(axis=1, keepdims=True)  # (N, 1), at least 1
        self.probs = exp / sum_exp  # (N, C), stage 1's softmax, for backward
        self.y = y
        N = logits.shape[0]
        if y.ndim == 1:
            # log p of the label only: log-sum-exp, exact even where p underflows
            shifted_y = shifted[np.arange(N), y]  # (N,)
            return float(-np.mean(shifted_y - np.log(sum_exp[:, 0])))
        log_p = shifted - np.log(sum_exp)  # (N, C), finite everywhere
        return float(-np.mean(np.sum(y * log_p, axis=1)))

    def backward(self) -> np.ndarray:
        """``dL/dlogits = (p - Y) / N``, from the cached probabilities.

        With integer labels, ``p - Y`` only changes the label's entry of each row,
        so it is an indexed subtraction: no (N, C) one-hot matrix is built.

        Returns:
            (N, C).
        """
        N = self.probs.shape[0]
        y = self.y
        if y.ndim == 1:
            dlogits = self.probs.copy()  # (N, C)
            dlogits[np.arange(N), y] -= 1
        else:
            dlogits = self.probs - y
        dlogits /= N
        return dlogits  # (N, C)


class CrossEntropy:
    """Mean cross-entropy of probabilities (the unfused path, after a ``Softmax``).

    ``L = -(1/N) sum_i log p[i, y_i]``; ``dL/dp[i, j] = -1 / (N p[i, y_i])`` for
    ``j = y_i`` and 0 elsewhere. Shown in the chapter to compare with
    :class:`SoftmaxCrossEntropy`: it divides by ``p``, which can be tiny.
    """

    def forward(self, probs: np.ndarray, y: np.ndarray) -> float:
        """Args: probs (N, C), y (N,) integer labels. Returns the loss."""
        N = probs.shape[0]
        self.p_correct = np.maximum(probs[np.arange(N), y], EPS)  # (N,)
        self.y = y
        self.shape = probs.shape
        return float(-np.mean(np.log(self.p_correct)))

    def backward(self) -> np.ndarray:
        """(N, C) gradient with respect to the probabilities."""
        N = self.shape[0]
        dprobs = np.zeros(self.shape, dtype=self.p_correct.dtype)  # (N, C)
        dprobs[np.arange(N), self.y] = -1 / (N * self.p_correct)
        return dprobs


class MSE:
    """Mean squared error over *all* entries (like ``torch.nn.MSELoss``).

    ``L = 1/(N K) sum_{i,k} (pred[i,k] - target[i,k])^2`` for (N, K) arrays, and
    ``dL/dpred = 2 (pred - target) / (N K)``. (Another common convention sums over
    the K outputs and averages over the N examples only: K times larger.)
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        """Args: pred (N, K), target (N, K). Returns the loss; caches the residual."""
        self.diff = pred - target  # (N, K)
        return float(np.mean(self.diff**2))

    def backward(self) -> np.ndarray:
        """(N, K) gradient with respect to ``pred``."""
        return 2 * self.diff / self.diff.size


# --------------------------------------------------------------------------- network
ACTIVATIONS: dict[str, type[Layer]] = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


class Network:
    """A multilayer perceptron: ``Linear, act, Linear, act, ..., Linear``.

    ``Network([784, 128, 64, 10])`` has three ``Linear`` layers (784 -> 128 -> 64 ->
    10) with an activation between consecutive ones; the last produces logits and
    the loss is :class:`SoftmaxCrossEntropy`. Forward is a loop over ``layers``,
    backward the same loop reversed.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | type[Layer] = "relu",
        *,
        init: str | Initializer = "he",
        seed: int = 0,
        dtype: np.dtype | type = np.float32,
        input_grad: bool = True,
    ) -> None:
        """Build the layers.

        Args:
            layer_sizes: ``[input, hidden..., classes]``, at least two sizes.
            activation: ``"relu"``, ``"sigmoid"``, ``"tanh"`` or a Layer class.
            init: the initialiser of every ``Linear`` (see :class:`Linear`).
            seed: one generator, seeded once, draws every layer's weights in turn.
            dtype: float32 by default; float64 for gradient checks.
            input_grad: whether :meth:`backward` computes and returns dL/dX.
                ``False`` for training, where X is the data and nothing uses its
                gradient: the first ``Linear`` then skips ``dx = dz @ W.T``, the
                largest product of backward for wide inputs.
        """
        if len(layer_sizes) < 2:
            raise ValueError(f"need at least [inputs, outputs], got {layer_sizes}")
        act = ACTIVATIONS[activation] if isinstance(activation, str) else activation
        rng = np.random.default_rng(seed)
        self.layer_sizes = list(layer_sizes)
        self.layers: list[Layer] = []
        pairs = list(zip(layer_sizes[:-1], layer_sizes[1:], strict=True))
        for i, (n_in, n_out) in enumerate(pairs):
            first = i == 0
            self.layers.append(
                Linear(
                    n_in,
                    n_out,
                    init=init,
                    rng=rng,
                    dtype=dtype,
                    input_grad=input_grad or not first,
                )
            )
            if i < len(pairs) - 1:
                self.layers.append(act())
        self.loss_layer = SoftmaxCrossEntropy()

    def forward(self, X: np.ndarray) -> np.ndarray:
        """(N, D) inputs to (N, C) logits, every layer caching what it needs."""
        out = X
        for layer in self.layers:
            out = layer.forward(out)
        return out

    def backward(self, dlogits: np.ndarray) -> np.ndarray | None:
        """Back-propagate dL/dlogits through the layers in reverse; return dL/dX
        (``None`` for a network built with ``input_grad=False``)."""
        dout = dlogits
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def update(self, lr: float) -> None:
        """One step of gradient descent on every parameter, in place."""
        for layer in self.layers:
            for name, p in layer.params.items():
                p -= lr * layer.grads[name]

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """The mean cross-entropy on (X, y) (runs forward, caches for backward)."""
        return self.loss_layer.forward(self.forward(X), y)

    def train_step(self, X: np.ndarray, y: np.ndarray, lr: float) -> float:
        """Forward, loss, backward, update. Returns the loss *before* the update.

        Training never uses dL/dX (X is the data), so the first layer skips it
        during this backward whatever ``input_grad`` says: the fast path is the
        default, and ``backward`` called on its own still returns dL/dX.
        """
        loss = self.loss(X, y)
        first = self.layers[0]
        saved = first.input_grad
        first.input_grad = False  # for this step only: no one reads dL/dX here
        try:
            self.backward(self.loss_layer.backward())
        finally:
            first.input_grad = saved
        self.update(lr)
        return loss

    def params(self) -> dict[str, np.ndarray]:
        """Every parameter, keyed ``"<layer index>.<name>"`` (``"0.W"``, ``"2.b"``).

        The values are the layers' own arrays: changing one changes the network.
        """
        return {
            f"{i}.{name}": p
            for i, layer in enumerate(self.layers)
            for name, p in layer.params.items()
        }

    def grads(self) -> dict[str, np.ndarray]:
        """Every gradient from the last backward, keyed like :meth:`params`."""
        return {
            f"{i}.{name}": g
            for i, layer in enumerate(self.layers)
            for name, g in layer.grads.items()
        }

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(N,) most likely class of each row of X."""
        return self.forward(X).argmax(axis=1)

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        """Fraction of rows of X classified correctly."""
        return float(np.mean(self.predict(X) == y))

    def __repr__(self) -> str:
        return "Network(" + " -> ".join(repr(layer) for layer in self.layers) + ")"


# --------------------------------------------------------------------------- training
def train_epoch(
    net: Network,
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
) -> float:
    """One epoch of mini-batch SGD: shuffle, then one ``train_step`` per batch.

    Args:
        net: anything with ``train_step(X, y, lr) -> float``.
        X: (N, D) inputs.
        y: (N,) labels.
        batch_size: examples per step; the last batch may be smaller.
        lr: learning rate.
        rng: draws the order of the examples (a new one every epoch).

    Returns:
        The mean of the batches' losses.
    """
    order = rng.permutation(len(X))  # (N,)
    losses = []
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        losses.append(net.train_step(X[idx], y[idx], lr))
    return float(np.mean(losses))


def fit(
    net: Network,
    X: np.ndarray,
    y: np.ndarray,
    *,
    num_epochs: int,
    batch_size: int,
    lr: float | Callable[[int], float],
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    seed: int = 0,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
) -> dict[str, list[float]]:
    """Train with :func:`train_epoch` and record a history per epoch.

    Args:
        net: the network, trained in place.
        X: (N, D) training inputs.
        y: (N,) training labels.
        num_epochs: passes over the training set.
        batch_size: examples per step.
        lr: the learning rate, or a function ``epoch -> learning rate`` (epochs
            counted from 0), e.g. a step decay ``lambda e: 0.3 if e < 5 else 0.05``.
        X_test: optional test inputs, evaluated after every epoch.
        y_test: their labels.
        seed: seed of the generator that shuffles the batches.
        X_val: optional validation inputs (see ``data.train_val_split``),
            evaluated after every epoch: the data to tune on.
        y_val: their labels.

    Returns:
        ``{"train_loss", "train_acc"}`` and, with validation or test data,
        ``"val_loss"``, ``"val_acc"``, ``"test_loss"``, ``"test_acc"``: one value
        per epoch (the mean loss of the epoch's batches; the accuracies and the
        other losses measured at the end of the epoch).
    """
    rng = np.random.default_rng(seed)
    schedule = lr if callable(lr) else (lambda epoch: lr)
    history: dict[str, list[float]] = {"train_loss": [], "train_acc": []}
    evaluated = {
        split: (X_eval, y_eval)
        for split, X_eval, y_eval in (("val", X_val, y_val), ("test", X_test, y_test))
        if X_eval is not None
    }
    for split in evaluated:
        history.update({f"{split}_loss": [], f"{split}_acc": []})
    for epoch in range(num_epochs):
        loss = train_epoch(net, X, y, batch_size, schedule(epoch), rng)
        history["train_loss"].append(loss)
        history["train_acc"].append(net.accuracy(X, y))
        for split, (X_eval, y_eval) in evaluated.items():
            history[f"{split}_loss"].append(net.loss(X_eval, y_eval))
            history[f"{split}_acc"].append(net.accuracy(X_eval, y_eval))
    return history


# --------------------------------------------------------------------------- checks
def gradient_check(
    net: Network, X: np.ndarray, y: np.ndarray, h: float = 1e-5
) -> dict[str, float]:
    """Compare back-propagation with central differences, parameter by parameter.

    Use a small float64 network (``Network(..., dtype=np.float64)``).

    Returns:
        ``{"0.W": relative error, "0.b": ..., ...}`` in the order of the layers.
    """
    net.loss(X, y)
    net.backward(net.loss_layer.backward())
    analytic = {name: g.copy() for name, g in net.grads().items()}
    return {
        name: relative_error(
            analytic[name], numerical_gradient(lambda: net.loss(X, y), p, h)
        )
        for name, p in net.params().items()
    }
