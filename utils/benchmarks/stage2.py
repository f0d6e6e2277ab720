"""Timings behind chapter 2: the fused softmax-cross-entropy backward and a train step.

* :func:`bench_softmax_cross_entropy_backward` times three ways to get dL/dlogits from
  cached forward passes: the fused ``(p - Y) / N``; the unfused path, where
  ``CrossEntropy.backward`` gives dL/dp and ``Softmax.backward`` applies the Jacobian
  as a vector product; and the same with the explicit (N, C, C) Jacobian.
* :func:`bench_train_step` times one ``train_step`` of ``Network([784, 128, 64, 10])``
  on a batch of 128 (random inputs: only the arithmetic matters).

The chapter calls these functions, so the figures it prints come from this code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from utils.benchmarks import Timing, best_time
from utils.reference.stage2 import CrossEntropy, Network, Softmax, SoftmaxCrossEntropy


def softmax_cross_entropy_backward_variants(
    N: int = 1024, C: int = 10, seed: int = 0
) -> dict[str, Callable[[], np.ndarray]]:
    """The three backward computations, each a function of no argument.

    The forward passes run once here; each function only does the backward work,
    which is what the fused layer saves.

    Args:
        N: batch size.
        C: number of classes.
        seed: seed of the random logits and labels.

    Returns:
        ``{"fused": ..., "unfused (Jacobian-vector product)": ...,
        "unfused (explicit Jacobian)": ...}``, each returning dL/dlogits (N, C).
    """
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, C)).astype(np.float32)
    y = rng.integers(0, C, N)
    fused = SoftmaxCrossEntropy()
    fused.forward(logits, y)
    softmax, ce = Softmax(), CrossEntropy()
    ce.forward(softmax.forward(logits), y)
    s = softmax.out  # (N, C)
    eye = np.eye(C, dtype=np.float32)

    def explicit() -> np.ndarray:
        jac = s[:, :, None] * eye - s[:, :, None] * s[:, None, :]  # (N, C, C)
        return np.einsum("nj,njk->nk", ce.backward(), jac)

    return {
        "fused": fused.backward,
        "unfused (Jacobian-vector product)": lambda: softmax.backward(ce.backward()),
        "unfused (explicit Jacobian)": explicit,
    }


def bench_softmax_cross_entropy_backward(N: int = 1024, C: int = 10) -> list[Timing]:
    """Microseconds per backward for each variant, and the fused speed-ups."""
    variants = softmax_cross_entropy_backward_variants(N, C)
    times = {name: best_time(fn, number=200) for name, fn in variants.items()}
    timings = [
        Timing(f"{name} backward, N={N}, C={C}", t * 1e6, "µs")
        for name, t in times.items()
    ]
    fused = times["fused"]
    timings += [
        Timing(f"speed-up of fused over {name}", t / fused, "x")
        for name, t in times.items()
        if name != "fused"
    ]
    return timings


def bench_train_step(batch_size: int = 128) -> list[Timing]:
    """Milliseconds per ``train_step`` of ``Network([784, 128, 64, 10])``."""
    rng = np.random.default_rng(0)
    X = rng.random((batch_size, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch_size)
    net = Network([784, 128, 64, 10])
    t = best_time(lambda: net.train_step(X, y, 0.01), number=20)
    return [Timing(f"train_step [784, 128, 64, 10], batch {batch_size}", t * 1e3, "ms")]
