"""Where the time of one training step goes, phase by phase, in stages 2, 3 and 4.

:func:`profile_steps` runs full training steps of the benchmark's MLP and times each
phase of every step (zeroing the gradients, forward, loss, backward, the optimizer's
step), keeping the best time of each phase over many steps: on a busy machine the
best is the least disturbed. Next to them, the plain fused loop's whole step, and
two costs that stages 3 and 4 would have with ``zero_grad()`` in place, and that
``zero_grad(set_to_none=True)``, which the stages' training loops use, avoids:
zeroing every gradient and adding the new gradient into it (``+=``) instead of
assigning it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

import numpy as np

from utils.benchmarks import throughput

Phases = list[tuple[str, Callable[[], object]]]


def _timed(phases_of_step: Callable[[], Phases]) -> dict[str, float]:
    """Seconds of each phase of one step."""
    times: dict[str, float] = {}
    for name, fn in phases_of_step():
        start = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - start
    return times


def _stage2(weights, X, y) -> Callable[[], Phases]:
    # built without dL/dX, which train_step (row c of the throughput) skips too
    net = throughput.stage2_network(weights, input_grad=False)
    box: dict[str, object] = {}

    def phases() -> Phases:
        return [
            ("forward", lambda: box.__setitem__("logits", net.forward(X))),
            ("loss", lambda: net.loss_layer.forward(box["logits"], y)),
            ("backward", lambda: net.backward(net.loss_layer.backward())),
            ("step", lambda: net.update(throughput.LR)),
        ]

    return phases


def _stage3(weights, X, y) -> Callable[[], Phases]:
    from utils.reference import stage3

    model, loss_fn, opt = throughput.chapter_mlp(stage3, weights, throughput.LR)
    # as train_epoch runs it: the first layer skips dL/dX (the box keeps the stack:
    # a collected one would leave the block at once)
    box: dict[str, object] = {"stack": contextlib.ExitStack()}
    box["stack"].enter_context(stage3.input_is_data(model))  # type: ignore[attr-defined]

    def phases() -> Phases:
        return [
            ("zero_grad", lambda: opt.zero_grad(set_to_none=True)),
            ("forward", lambda: box.__setitem__("logits", model(X))),
            ("loss", lambda: loss_fn(box["logits"], y)),
            ("backward", lambda: model.backward(loss_fn.backward())),
            ("step", opt.step),
        ]

    return phases


def _stage4(weights, X, y) -> Callable[[], Phases]:
    from utils.reference import stage4

    model, loss_fn, opt = throughput.chapter_mlp(stage4, weights, throughput.LR)
    box: dict[str, object] = {}

    def phases() -> Phases:
        return [
            ("zero_grad", lambda: opt.zero_grad(set_to_none=True)),
            ("forward", lambda: box.__setitem__("logits", model(X))),
            ("loss", lambda: box.__setitem__("loss", loss_fn(box["logits"], y))),
            ("backward", lambda: box["loss"].backward()),
            ("step", opt.step),
        ]

    return phases


def profile_steps(
    sizes: Sequence[int] = throughput.SIZES,
    batch_size: int = throughput.BATCH_SIZE,
    repeats: int = 100,
) -> dict[str, dict[str, float]]:
    """Best microseconds of each phase of a step, per implementation.

    Returns:
        ``{"plain": {"step": µs}, "stage 2": {...}, "stage 3": {...},
        "stage 4": {...}, "design costs": {"fill every grad": µs,
        "grad += new grad, every parameter": µs}}``; a stage that cannot be built is
        left out.
    """
    (batch,), _ = throughput.make_batches(1, batch_size, sizes[0], sizes[-1])
    X, y = batch
    weights = throughput.init_weights(sizes)
    plain = throughput.plain_numpy(weights)
    builders = {"stage 2": _stage2, "stage 3": _stage3, "stage 4": _stage4}
    makers = {"plain": lambda: [("step", lambda: plain(X, y))]}
    for name, build in builders.items():
        try:
            makers[name] = build(weights, X, y)
        except ImportError:
            continue
    grads = [np.ones_like(W) for W, _ in weights] + [
        np.ones_like(b) for _, b in weights
    ]
    news = [g.copy() for g in grads]

    def fill() -> None:
        for g in grads:
            g.fill(0)

    def add() -> None:
        for g, n in zip(grads, news, strict=True):
            g += n

    makers["design costs"] = lambda: [
        ("fill every grad", fill),
        ("grad += new grad, every parameter", add),
    ]
    out: dict[str, dict[str, float]] = {name: {} for name in makers}
    for _ in range(repeats):  # interleaved: one step of each, in turn
        for name, make in makers.items():
            for phase, t in _timed(make).items():
                out[name][phase] = min(out[name].get(phase, np.inf), t * 1e6)
    return out


def format_profile(profile: dict[str, dict[str, float]]) -> str:
    """A line per implementation: each phase's best µs and their sum."""
    lines = []
    for name, phases in profile.items():
        total = sum(phases.values())
        parts = ", ".join(f"{p} {t:,.0f}" for p, t in phases.items())
        lines.append(f"{name:<13} {total:>7,.0f} µs = {parts}")
    return "\n".join(lines)
