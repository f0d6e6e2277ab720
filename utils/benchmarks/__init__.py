"""Benchmarks behind the timings the chapters quote; run them with ``make bench``.

Each module ``utils/benchmarks/<name>.py`` defines functions ``bench_*()`` that take no
argument and return a list of :class:`Timing`. Timings are never asserted in tests:
they depend on the machine.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Timing:
    """One measured figure."""

    name: str
    value: float
    unit: str

    def __str__(self) -> str:
        return f"{self.name}: {self.value:.3g} {self.unit}"


def best_time(fn: Callable[[], object], number: int = 10, repeat: int = 5) -> float:
    """Seconds per call of ``fn``: the best of ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number
