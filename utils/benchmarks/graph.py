"""Stage 4's backward pass on graphs of growing size: visits and time per node.

Two shapes, each of ``n`` operation nodes on a small vector (so the arithmetic is
negligible and the time is the framework's own per-node overhead):

* a chain: ``t = t * 1.0``, ``n`` times;
* diamonds: ``a = t * 0.5; b = t * 0.5; t = a + b``, ``n / 3`` times. Each ``t`` is
  used twice, so a backward pass that recursed into every use instead of visiting
  the graph once in topological order would visit ``2^(n/3)`` nodes.

For each, :func:`measure_graph` counts the calls of ``Function.backward`` during
``loss.backward()`` (one per node when every node is visited once), times the
forward (building the graph) and the backward pass per node, and counts the Python
function calls of the backward pass per node. Linear cost means a number of calls
per node that stays flat from 10 to 10,000 nodes, whatever the machine; the time
per node also grows with the graph once its objects no longer fit in the CPU's
caches (and more so on a busy machine), which is not the algorithm's doing.
"""

from __future__ import annotations

import contextlib
import cProfile
import pstats
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

SIZES = (10, 100, 1_000, 10_000)
SHAPES = ("chain", "diamond")


@dataclass
class GraphTiming:
    """One graph: its shape and size, backward visits, and microseconds per node."""

    shape: str
    nodes: int
    visits: int | None
    forward_us: float
    backward_us: float
    note: str = ""
    calls_per_node: float = float("nan")


def build(shape: str, n: int, stage4) -> tuple[object, object]:
    """The leaf tensor and the scalar root of a chain or diamond graph of ``n``
    operations (plus the final sum)."""
    x = stage4.Tensor(np.ones(4, dtype=np.float32), requires_grad=True)
    t = x
    if shape == "chain":
        for _ in range(n):
            t = t * 1.0
    elif shape == "diamond":
        for _ in range(max(n // 3, 1)):
            t = t * 0.5 + t * 0.5  # values stay 1: no overflow however deep
    else:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    return x, t.sum()


@contextlib.contextmanager
def count_backward_calls(stage4) -> Iterator[list[int]]:
    """Count the calls of every ``Function`` subclass's ``backward`` while inside."""
    counter = [0]
    patched: list[tuple[type, object]] = []

    def counting(fn: Callable) -> Callable:
        def backward(*args, **kwargs):
            counter[0] += 1
            return fn(*args, **kwargs)

        return backward

    classes = [
        c
        for c in vars(stage4).values()
        if isinstance(c, type)
        and issubclass(c, stage4.Function)
        and "backward" in c.__dict__
    ]
    try:
        for cls in classes:
            original = cls.__dict__["backward"]
            fn = original.__func__ if isinstance(original, staticmethod) else original
            patched.append((cls, original))
            cls.backward = staticmethod(counting(fn))
        yield counter
    finally:
        for cls, original in patched:
            cls.backward = original


def measure_graph(shape: str, n: int, stage4, repeats: int = 3) -> GraphTiming:
    """Visits and best-of-``repeats`` microseconds per node for one graph."""
    forward_best = backward_best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x, root = build(shape, n, stage4)
        forward_best = min(forward_best, time.perf_counter() - start)
        start = time.perf_counter()
        root.backward()
        backward_best = min(backward_best, time.perf_counter() - start)
    x, root = build(shape, n, stage4)
    with count_backward_calls(stage4) as counter:
        root.backward()
    x, root = build(shape, n, stage4)
    nodes = len(stage4.topological_sort(root)) - 1  # every op node; not the leaf
    profiler = cProfile.Profile()
    profiler.runcall(root.backward)
    calls = pstats.Stats(profiler).total_calls
    return GraphTiming(
        shape,
        nodes,
        counter[0],
        forward_best / nodes * 1e6,
        backward_best / nodes * 1e6,
        calls_per_node=calls / nodes,
    )


def run(sizes: Sequence[int] = SIZES) -> list[GraphTiming]:
    """Every shape at every size; one row saying why if stage 4 is not there."""
    try:
        from utils.reference import stage4
    except ImportError as exc:
        return [GraphTiming("-", 0, None, float("nan"), float("nan"), str(exc))]
    out = []
    for shape in SHAPES:
        for n in sizes:
            try:
                out.append(measure_graph(shape, n, stage4))
            except Exception as exc:  # noqa: BLE001 - report it in the table
                out.append(
                    GraphTiming(shape, n, None, float("nan"), float("nan"), f"{exc!r}")
                )
    return out


def format_table(rows: Sequence[GraphTiming]) -> str:
    """A line per graph: nodes, backward visits, forward and backward µs per node."""
    lines = [
        f"{'graph':<9}{'nodes':>8}{'visits':>8}"
        f"{'forward µs/node':>17}{'backward µs/node':>18}{'calls/node':>12}"
    ]
    for r in rows:
        if r.note and r.visits is None and r.nodes == 0:
            lines.append(f"stage 4 not available: {r.note}")
            continue
        visits = "?" if r.visits is None else f"{r.visits:,}"
        line = (
            f"{r.shape:<9}{r.nodes:>8,}{visits:>8}"
            f"{r.forward_us:>17.1f}{r.backward_us:>18.1f}{r.calls_per_node:>12.1f}"
        )
        lines.append(line + (f"  {r.note}" if r.note else ""))
    return "\n".join(lines)
