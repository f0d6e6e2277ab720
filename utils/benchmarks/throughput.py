"""Training throughput of the course's frameworks against a plain fused NumPy loop.

Every implementation trains the same MLP (784-256-128-10 by default, ReLU, softmax
cross-entropy, plain SGD, float32) from the same initial weights on the same
batches, and :func:`measure` reports samples per second:

* (a) a plain NumPy loop written here, fused by hand: in-place bias, ReLU and
  softmax, the label's entry subtracted by index, no gradient for the input data.
  It is the baseline of every ratio.
* (b) stage 1's ``train_step``, which is fixed at two layers (784-256-10); its ratio
  is taken to the same plain loop on 784-256-10.
Every stage is measured as its chapter builds and trains it, with the defaults a
reader gets (only the optimizer is plain ``SGD`` everywhere, for the same
arithmetic):

* (c) stage 2's ``Network(sizes, "relu")`` and its ``train_step`` (which ``fit``
  calls, and which never computes the data's gradient).
* (d) stage 3's ``Sequential(Linear(D, H1), ReLU(), Linear(H2), ReLU(),
  Linear(C))`` as chapter 3 writes it, ``CrossEntropyLoss`` and ``SGD``, run as
  ``train_epoch`` runs it: inside ``input_is_data(model)``, so the first layer
  skips the data's gradient.
* (e) stage 4's ``Sequential(Linear(D, H1), ReLU(), Linear(H2), ReLU(),
  Linear(C))`` as chapter 4 writes it, ``CrossEntropyLoss`` and ``SGD``; the batch
  is an array, data, so its gradient is never computed.

  Stages 3 and 4 reset the gradients with ``zero_grad(set_to_none=True)``, as their
  ``train_epoch`` does: backward then assigns each gradient instead of adding it to
  zeros, so neither a zero fill nor a ``+=`` pass is left that the plain loop lacks.
  Indented rows under (c), (d) and (e) show what a design choice costs: the
  input's gradient computed, and ``x @ W + b`` recorded as two operations.
* (f) PyTorch on the CPU, only if it is installed (it is not a dependency).
* (g) stage 5's CNN (not the MLP: samples/s of the chapter's convolutional
  network on the same images, its ratio to itself).

The machine may be shared, so the implementations are *interleaved*: each repeat
runs every implementation over all the batches once, in a rotating order, each
beside a pass of its baseline (the plain loop), and each keeps its best time (the
samples/s column). A ratio is the median, over the repeats, of the ratio of the two
passes run back to back: machine-speed drift between repeats (other processes, the
clock) cancels, and the median ignores the repeats a load spike hit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

Step = Callable[[np.ndarray, np.ndarray], float]
Weights = list[tuple[np.ndarray, np.ndarray]]

SIZES = (784, 256, 128, 10)
BATCH_SIZE = 128
LR = 0.01


# --------------------------------------------------------------------------- data
def make_batches(
    n_batches: int,
    batch_size: int = BATCH_SIZE,
    n_features: int = SIZES[0],
    num_classes: int = SIZES[-1],
    *,
    mnist: bool = False,
    seed: int = 0,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """The batches every implementation trains on, and a description of them.

    Args:
        n_batches: how many batches.
        batch_size: rows per batch.
        n_features: columns of X (784 for MNIST's shape).
        num_classes: labels are in ``[0, num_classes)``.
        mnist: take the first training images of MNIST (``load_mnist()``, which
            reads ``MNIST_PATH``) instead of uniform noise of the same shape. Only
            the arithmetic matters for speed, so noise is the fast default.
        seed: seed of the synthetic data.

    Returns:
        ``([(X, y), ...], description)``, X float32 (batch_size, n_features), y int64.
    """
    n = n_batches * batch_size
    if mnist:
        from utils.data import load_mnist

        data = load_mnist(download=False)
        X, y = data.X_train[:n], data.y_train[:n]
        source = f"MNIST ({data.name})"
    else:
        rng = np.random.default_rng(seed)
        X = rng.random((n, n_features), dtype=np.float32)
        y = rng.integers(0, num_classes, n)
        source = "synthetic data of MNIST's shape"
    batches = [
        (
            np.ascontiguousarray(X[i : i + batch_size], dtype=np.float32),
            y[i : i + batch_size].astype(np.int64),
        )
        for i in range(0, n, batch_size)
    ]
    return batches, source


def init_weights(sizes: Sequence[int], seed: int = 0) -> Weights:
    """He-initialised float32 weights and small random biases for every layer."""
    rng = np.random.default_rng(seed)
    return [
        (
            (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(
                np.float32
            ),
            (0.01 * rng.standard_normal(n_out)).astype(np.float32),
        )
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


# --------------------------------------------------------------------------- (a)
def plain_numpy(weights: Weights, lr: float = LR) -> Step:
    """A training step written as one fused NumPy loop: the baseline.

    Forward ``h = relu(h @ W + b)`` (bias and ReLU in place), stable softmax in
    place; backward ``d = (p - Y) / N`` by subtracting 1 at each label, then per
    layer ``dW = h.T @ d``, ``db = sum d``, ``d = (d @ W.T) * (h > 0)``, except for
    the first layer, whose input is the data. Plain SGD ``W -= lr * dW``.
    """
    params = [(W.copy(), b.copy()) for W, b in weights]
    last = len(params) - 1

    def step(X: np.ndarray, y: np.ndarray) -> float:
        N = X.shape[0]
        inputs = [X]  # the input of each layer
        h = X
        for i, (W, b) in enumerate(params):
            h = h @ W
            h += b
            if i < last:
                np.maximum(h, 0, out=h)
                inputs.append(h)
        h -= h.max(axis=1, keepdims=True)
        np.exp(h, out=h)
        h /= h.sum(axis=1, keepdims=True)  # h is now probs, (N, C)
        rows = np.arange(N)
        loss = float(-np.mean(np.log(h[rows, y] + 1e-12)))
        d = h
        d[rows, y] -= 1
        d /= N
        for i in range(last, -1, -1):
            W, b = params[i]
            x = inputs[i]
            dW = x.T @ d
            db = d.sum(axis=0)
            if i > 0:
                d = d @ W.T
                d *= x > 0
            W -= lr * dW
            b -= lr * db
        return loss

    return step


# --------------------------------------------------------------------------- stages
def stage1_step(weights: Weights, lr: float = LR) -> Step:
    """Stage 1's ``train_step`` on ``W1, b1, W2, b2`` (exactly two layers)."""
    from utils.reference import stage1

    if len(weights) != 2:
        raise ValueError("stage 1 is fixed at two layers")
    (W1, b1), (W2, b2) = weights
    params = {"W1": W1.copy(), "b1": b1.copy(), "W2": W2.copy(), "b2": b2.copy()}
    return lambda X, y: stage1.train_step(X, y, params, lr)


def stage2_network(weights: Weights, *, input_grad: bool = True) -> Any:
    """Stage 2's ``Network(sizes, "relu")`` of the benchmark's sizes, built with its
    defaults as chapter 2's reader would (``input_grad`` is the constructor's),
    holding ``weights``."""
    from utils.reference import stage2

    sizes = [weights[0][0].shape[0]] + [W.shape[1] for W, _ in weights]
    net = stage2.Network(sizes, "relu", input_grad=input_grad)
    linears = [layer for layer in net.layers if isinstance(layer, stage2.Linear)]
    for layer, (W, b) in zip(linears, weights, strict=True):
        layer.W[...] = W
        layer.b[...] = b
    return net


def stage2_step(weights: Weights, lr: float = LR, *, input_grad: bool = False) -> Step:
    """Stage 2's default ``Network`` and its ``train_step`` (which ``fit`` calls).

    ``input_grad=True``: the loop written out instead, ``loss``, ``backward`` and
    ``update``, where ``backward`` returns dL/dX as it does when called on its own:
    the row that shows what the input's gradient costs.
    """
    net = stage2_network(weights)
    if not input_grad:
        return lambda X, y: net.train_step(X, y, lr)

    def step(X: np.ndarray, y: np.ndarray) -> float:
        loss = net.loss(X, y)
        net.backward(net.loss_layer.backward())  # returns dL/dX, unused
        net.update(lr)
        return loss

    return step


def chapter_mlp(
    nn: ModuleType, weights: Weights, lr: float, **first_layer: Any
) -> tuple[Any, Any, Any]:
    """``(model, loss_fn, optimizer)`` built as chapters 3 and 4 build their MNIST
    model: ``Sequential(Linear(D, H1), ReLU(), Linear(H2), ReLU(), Linear(C))``
    (the later layers lazy, built by a first forward on one row), ``nn``'s
    ``CrossEntropyLoss`` and plain ``SGD``; then ``weights`` are copied in.
    ``first_layer`` are extra arguments of the first ``Linear`` (chapter 3 passes
    ``input_grad=False``)."""
    (W0, _), *rest = weights
    layers: list = [nn.Linear(*W0.shape, **first_layer)]
    for W, _ in rest:
        layers += [nn.ReLU(), nn.Linear(W.shape[1])]  # lazy: in_features inferred
    model = nn.Sequential(*layers)
    model(np.zeros((1, W0.shape[0]), dtype=np.float32))  # builds the lazy layers
    linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
    for linear, (W, b) in zip(linears, weights, strict=True):
        linear.W.data[...] = W
        linear.b.data[...] = b
    return model, nn.CrossEntropyLoss(), nn.SGD(model.parameters(), lr=lr)


def stage3_step(weights: Weights, lr: float = LR, *, input_grad: bool = False) -> Step:
    """Stage 3's model as chapter 3 builds it (``Sequential(Linear(D, H1), ...)``,
    every layer at its defaults) + ``CrossEntropyLoss`` + ``SGD``: one loop body of
    ``train_epoch``, inside ``input_is_data(model)`` as ``train_epoch`` runs it (the
    first layer skips dL/dX). ``input_grad=True``: the loop body written out
    without ``input_is_data``, so the first ``Linear`` computes dL/dX."""
    from utils.reference import stage3

    model, loss_fn, optimizer = chapter_mlp(stage3, weights, lr)
    # entered for the step's lifetime, as train_epoch enters it for a whole epoch
    # (the step keeps the stack: a collected one would leave the block at once)
    stack = contextlib.ExitStack()
    if not input_grad:
        stack.enter_context(stage3.input_is_data(model))

    def step(X: np.ndarray, y: np.ndarray, stack=stack) -> float:  # noqa: ARG001
        optimizer.zero_grad(set_to_none=True)  # backward assigns grads
        loss = loss_fn(model(X), y)
        model.backward(loss_fn.backward())
        optimizer.step()
        return loss

    return step


def stage4_step(weights: Weights, lr: float = LR, *, fused: bool = True) -> Step:
    """Stage 4's model as chapter 4 builds it + ``CrossEntropyLoss`` + ``SGD``: one
    loop body of ``train_epoch``, which passes the batch as an array (data: no
    gradient, so the first ``Linear`` never computes dL/dX).

    ``fused=False``: every ``Linear`` records ``x @ W + b`` as two operations
    (``MatMul`` and ``Add``) instead of one ``Affine``: what the fusion saves.
    """
    from utils.reference import stage4

    model, loss_fn, optimizer = chapter_mlp(stage4, weights, lr)
    if not fused:
        for layer in model:
            if isinstance(layer, stage4.Linear):
                layer.forward = lambda x, layer=layer: x @ layer.W + layer.b

    def step(X: np.ndarray, y: np.ndarray) -> float:
        optimizer.zero_grad(set_to_none=True)  # backward assigns grads
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def stage5_step(weights: Weights, lr: float = LR) -> Step:  # noqa: ARG001
    """Stage 5's CNN (the chapter's: 8 and 16 channels, 3x3 convolutions, 2x2 max
    pooling, a hidden layer of 128) + ``CrossEntropyLoss`` + ``SGD``, on the same
    28x28 batches. Not the
    MLP: its ratio is to itself; the row says what a convolution costs per image."""
    from utils.reference import stage4, stage5

    stage4.manual_seed(0)
    model = stage5.cnn((28, 28), (8, 16), hidden=128)
    loss_fn = stage4.CrossEntropyLoss()
    optimizer = stage4.SGD(model.parameters(), lr=lr)

    def step(X: np.ndarray, y: np.ndarray) -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def torch_step(weights: Weights, lr: float = LR) -> Step:
    """PyTorch on the CPU, the same model, weights and plain SGD."""
    import torch

    layers: list = []
    for W, b in weights:
        linear = torch.nn.Linear(*W.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)

    def step(X: np.ndarray, y: np.ndarray) -> float:
        optimizer.zero_grad()
        loss = loss_fn(model(torch.from_numpy(X)), torch.from_numpy(y))
        loss.backward()
        optimizer.step()
        return float(loss)

    return step


# --------------------------------------------------------------------------- rows
@dataclass
class Impl:
    """One row of the table: how to build a step, and what its ratio compares to."""

    key: str
    label: str
    make: Callable[[], Step] | None  # None: not available (the note says why)
    baseline: str = "a"
    note: str = ""


def implementations(sizes: Sequence[int] = SIZES, lr: float = LR) -> list[Impl]:
    """The rows (a)-(f), plus two rows that show what the first layer's ``dx``
    costs, and the plain loop on stage 1's two-layer shape."""
    weights = init_weights(sizes)
    two = init_weights([sizes[0], sizes[1], sizes[-1]])
    two_name = f"{sizes[0]}-{sizes[1]}-{sizes[-1]}"
    impls = [
        Impl("a", "(a) plain fused NumPy loop", lambda: plain_numpy(weights, lr)),
        Impl(
            "a2",
            f"(a2) plain fused NumPy loop, {two_name}",
            lambda: plain_numpy(two, lr),
        ),
        Impl(
            "b",
            f"(b) stage 1 train_step, {two_name} (two layers)",
            lambda: stage1_step(two, lr),
            baseline="a2",
        ),
        Impl("c", "(c) stage 2 Network.train_step", lambda: stage2_step(weights, lr)),
        Impl(
            "c0",
            "    stage 2, backward returns dX",
            lambda: stage2_step(weights, lr, input_grad=True),
        ),
        Impl("d", "(d) stage 3 Sequential + SGD", lambda: stage3_step(weights, lr)),
        Impl(
            "d0",
            "    stage 3, own loop without input_is_data: dX",
            lambda: stage3_step(weights, lr, input_grad=True),
        ),
    ]
    try:
        from utils.reference import stage4  # noqa: F401
    except ImportError as exc:
        impls.append(
            Impl("e", "(e) stage 4 autograd", None, note=f"not available ({exc})")
        )
    else:
        impls.append(
            Impl(
                "e",
                "(e) stage 4 autograd Sequential + SGD",
                lambda: stage4_step(weights, lr),
            )
        )
        impls.append(
            Impl(
                "e0",
                "    stage 4, x @ W + b unfused",
                lambda: stage4_step(weights, lr, fused=False),
            )
        )
    if sizes[0] == 784:  # the CNN needs 28x28 images
        try:
            from utils.reference import stage5  # noqa: F401
        except ImportError as exc:
            impls.append(Impl("g", "(g) stage 5 CNN", None, note=f"({exc})"))
        else:
            impls.append(
                Impl(
                    "g",
                    "(g) stage 5 CNN 8-16 channels + SGD",
                    lambda: stage5_step(weights, lr),
                    baseline="g",
                )
            )
    try:
        import torch  # noqa: F401
    except ImportError:
        impls.append(Impl("f", "(f) PyTorch (CPU)", None, note="not installed"))
    else:
        impls.append(Impl("f", "(f) PyTorch (CPU)", lambda: torch_step(weights, lr)))
    return impls


# --------------------------------------------------------------------------- timing
@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[int]:
    """Limit BLAS (and PyTorch, if loaded) to ``n`` threads; yields the number of
    BLAS threads actually in effect (an OpenBLAS started with fewer may refuse)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    torch_threads = None
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
            yield max((p["num_threads"] for p in pools), default=n)
    finally:
        if torch is not None and torch_threads is not None:
            torch.set_num_threads(torch_threads)


@dataclass
class Result:
    """Samples per second of every row, for one BLAS thread count.

    ``ratios`` is each row's speed relative to its baseline: the median, over the
    repeats, of the baseline's time over the row's time measured back to back in the
    same repeat, so that the machine's speed drifting between repeats cancels.
    ``torch_ratios`` is the same against PyTorch (row f). Either may be empty (then
    the ratio of the best samples/s is shown)."""

    threads: int
    samples_per_s: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    torch_ratios: dict[str, float] = field(default_factory=dict)

    def ratio(self, key: str, baseline: str) -> float | None:
        """``key``'s speed over ``baseline``'s: the median of the per-repeat
        ratios when measured, else the ratio of the best samples/s."""
        if key == baseline:
            return 1.0 if key in self.samples_per_s else None
        table = self.torch_ratios if baseline == "f" else self.ratios
        if key in table:
            return table[key]
        sps, base = self.samples_per_s.get(key), self.samples_per_s.get(baseline)
        return sps / base if sps and base else None


def measure(
    impls: Sequence[Impl],
    batches: Sequence[tuple[np.ndarray, np.ndarray]],
    repeats: int,
    threads: int,
) -> Result:
    """Best-of-``repeats`` samples/s of every available row, and each row's ratio
    to its baseline (and to PyTorch) as the median of per-repeat ratios.

    Each repeat runs every row once over all ``batches`` (one pass is one timed
    unit), in an order rotated by one at each repeat, and each row, after an untimed
    pass that warms its arrays, right after or right before (alternating) a pass of
    its baseline: the pair's ratio is that
    repeat's ratio, taken within a few milliseconds, so a load spike or a change of
    clock speed between repeats does not enter it. PyTorch's ratio is taken to the
    PyTorch pass of the same repeat.
    """
    result = Result(threads)
    steps: dict[str, Step] = {}
    baselines: dict[str, str] = {}
    for impl in impls:
        if impl.make is None:
            continue
        try:
            step = impl.make()
            step(*batches[0])  # warm-up: lazy set-up, caches, first allocations
        except Exception as exc:  # noqa: BLE001 - a broken row must not stop the table
            result.errors[impl.key] = f"{type(exc).__name__}: {exc}"
            continue
        steps[impl.key] = step
        baselines[impl.key] = impl.baseline
    n_samples = sum(len(y) for _, y in batches)

    def timed(key: str) -> float:
        step = steps[key]
        start = time.perf_counter()
        for X, y in batches:
            step(X, y)
        return time.perf_counter() - start

    best = dict.fromkeys(steps, float("inf"))
    per_repeat: dict[str, list[float]] = {key: [] for key in steps}
    vs_torch: dict[str, list[float]] = {key: [] for key in steps}
    keys = list(steps)
    for r in range(repeats):
        k = r % len(keys) if keys else 0
        times: dict[str, float] = {}
        for key in keys[k:] + keys[:k]:
            base = baselines[key]
            if base == key or base not in steps:
                times[key] = timed(key)
                continue
            # an untimed pass first: the baseline runs beside every row, so its
            # weights and buffers are always in the cache, and a row's, last used
            # a repeat ago, are not (that alone cost rows 5-10%)
            timed(key)
            if r % 2:  # alternate which of the pair runs first
                times[key], t_base = timed(key), timed(base)
            else:
                t_base, times[key] = timed(base), timed(key)
            best[base] = min(best[base], t_base)
            per_repeat[key].append(t_base / times[key])
        for key, t in times.items():
            best[key] = min(best[key], t)
        if "f" in times:
            for key, t in times.items():
                vs_torch[key].append(times["f"] / t)
    result.samples_per_s = {key: n_samples / t for key, t in best.items()}
    result.ratios = {
        key: float(np.median(values)) for key, values in per_repeat.items() if values
    }
    result.torch_ratios = {
        key: float(np.median(values)) for key, values in vs_torch.items() if values
    }
    return result


def run(
    *,
    sizes: Sequence[int] = SIZES,
    batch_size: int = BATCH_SIZE,
    n_batches: int = 1,
    repeats: int = 120,
    threads: Sequence[int] = (1, 2),
    mnist: bool = False,
    lr: float = LR,
) -> tuple[list[Impl], list[Result], str]:
    """Measure every row for every thread count.

    Returns:
        ``(rows, results, description of the run)``.
    """
    batches, source = make_batches(
        n_batches, batch_size, sizes[0], sizes[-1], mnist=mnist
    )
    impls = implementations(sizes, lr)
    results = []
    for n in threads:
        with blas_threads(n) as actual:
            res = measure(impls, batches, repeats, n)
            res.threads = actual
        results.append(res)
    shape = "-".join(str(s) for s in sizes)
    text = (
        f"MLP {shape}, batch {batch_size}, plain SGD (lr {lr:g}), float32, "
        f"{n_batches} batch{'es' if n_batches != 1 else ''} of {source}; "
        f"best of {repeats} interleaved repeats (a repeat: every row once over "
        "the batches, in a rotating order, each beside a pass of its baseline); "
        "ratios: the median of the per-repeat ratios"
    )
    return impls, results, text


def format_table(impls: Sequence[Impl], results: Sequence[Result]) -> str:
    """The table: a row per implementation; for each thread count its samples/s,
    its ratio to its baseline (the plain loop) and, when PyTorch was measured, its
    ratio to PyTorch (row f) on the same MLP."""
    width = max(len(impl.label) for impl in impls) + 2
    torch = any("f" in r.samples_per_s for r in results)
    cell = 36 if torch else 26
    head = "".join(
        f"{f'{r.threads} BLAS thread' + ('s' if r.threads > 1 else ''):>{cell}}"
        for r in results
    )
    sub = "".join(
        f"{'samples/s':>14}{'ratio':>12}" + (f"{'vs torch':>10}" if torch else "")
        for _ in results
    )
    lines = [f"{'':<{width}}{head}", f"{'':<{width}}{sub}"]
    for impl in impls:
        cells = ""
        for res in results:
            sps = res.samples_per_s.get(impl.key)
            if sps is None:
                why = impl.note or res.errors.get(impl.key, "failed")
                cells += f"{why[: cell - 2]:>{cell}}"
                continue
            base = res.ratio(impl.key, impl.baseline)
            ratio = f"{base:.2f}x ({impl.baseline})" if base else ""
            cells += f"{sps:>14,.0f}{ratio:>12}"
            if torch:
                ref = res.ratio(impl.key, "f")
                same_model = impl.baseline == "a"  # rows on the MLP of row f
                cells += f"{ref:>9.2f}x" if ref and same_model else f"{'':>10}"
        lines.append(f"{impl.label:<{width}}{cells}")
    for res in results:
        for key, err in res.errors.items():
            lines.append(f"  row {key}, {res.threads} thread(s): {err}")
    return "\n".join(lines)


def closing_note(
    results: Sequence[Result],
    keys: Sequence[str] = ("c", "d", "e"),
    load: str | None = None,
) -> str:
    """One line per thread count: stages 2, 3 and 4 (rows c, d, e) as a ratio of
    the plain loop (the median of the per-repeat ratios), and of PyTorch when it
    was measured; then ``load`` (the load average, say) on a line of its own."""
    names = {"c": "stage 2", "d": "stage 3", "e": "stage 4"}
    lines = []
    for res in results:
        parts = []
        for k in keys:
            plain, torch = res.ratio(k, "a"), res.ratio(k, "f")
            if plain is None:
                continue
            parts.append(
                f"{names.get(k, k)} {plain:.2f}x"
                + (f" ({torch:.2f}x PyTorch)" if torch else "")
            )
        threads = f"{res.threads} BLAS thread" + ("s" if res.threads > 1 else "")
        lines.append(f"{threads}: " + ", ".join(parts) + " of the plain loop")
    if load:
        lines.append(load)
    return "\n".join(lines)
