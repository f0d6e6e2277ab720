"""Run every benchmark in :mod:`utils.benchmarks` and print its timings.

Usage: ``python -m utils.bench`` (or ``make bench``). This is a command-line entry
point, so it prints; the benchmarks themselves return :class:`Timing` values.
"""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys

import numpy as np

import utils.benchmarks as benchmarks


def main() -> int:
    sys.stdout.write(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()}\n"
    )
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"utils.benchmarks.{info.name}")
        for name in sorted(n for n in dir(module) if n.startswith("bench_")):
            for timing in getattr(module, name)():
                sys.stdout.write(f"[{info.name}] {timing}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
