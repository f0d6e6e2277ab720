"""``make bench``: the course's timings, measured in one run and printed as tables.

1. Training throughput (samples/s) of the same MLP in a plain fused NumPy loop and
   in every stage's framework, each model built as its chapter builds it, with 1
   and 2 BLAS threads, each row with its ratio to the plain loop and, when PyTorch
   is installed (it is not a dependency), to PyTorch; a closing note sums up
   stages 2-4 with the load average (:mod:`utils.benchmarks.throughput`).
2. Where the time of one training step goes, phase by phase, in stages 2-4
   (:mod:`utils.benchmarks.profile`).
3. Stage 4's backward pass on chains and diamonds of 10 to 10,000 nodes: nodes
   visited and time per node, which must stay flat (linear total time)
   (:mod:`utils.benchmarks.graph`).
4. Every ``bench_*()`` function of the other modules of :mod:`utils.benchmarks`
   (the figures chapter 2 quotes, for example).
5. Each notebook's execution time and its check calls' times
   (:mod:`utils.benchmarks.notebooks`).

Usage: ``python -m utils.bench [--quick] [--no-notebooks] [--threads 1 2]``. This is
a command-line entry point, so it prints; the benchmarks themselves return values.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import sys
import time
from collections.abc import Sequence

import numpy as np

import utils.benchmarks as benchmarks

# modules whose results are tables printed by main(), not bench_*() timings
_TABLE_MODULES = {"graph", "notebooks", "profile", "throughput"}


def load_average() -> str:
    """The 1, 5 and 15-minute load averages (as ``uptime`` shows), and the CPUs."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return f"load average unavailable, {os.cpu_count()} CPUs"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def blas_description() -> str:
    """Which BLAS NumPy uses and its default thread count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return ", ".join(
        f"{p.get('internal_api')} {p.get('version')} "
        f"({p.get('num_threads')} threads by default)"
        for p in pools
    )


def _section(title: str) -> None:
    sys.stdout.write(f"\n== {title}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and no notebooks: checks that the benchmark runs",
    )
    parser.add_argument("--no-notebooks", action="store_true")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)

    from utils.benchmarks import graph, profile, throughput

    mnist = bool(os.environ.get("MNIST_PATH")) and not args.quick
    sys.stdout.write(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()}; BLAS: {blas_description()}\n"
        f"{load_average()} (at the start)\n"
    )

    _section("Training throughput")
    if args.quick:
        kwargs = dict(sizes=(20, 12, 8, 3), batch_size=8, n_batches=2, repeats=1)
    else:
        kwargs = dict(n_batches=1, repeats=args.repeats or 120, mnist=mnist)
    impls, results, text = throughput.run(threads=args.threads, **kwargs)
    sys.stdout.write(f"{text}\n{throughput.format_table(impls, results)}\n")
    note = throughput.closing_note(results, load=f"{load_average()} (after the table)")
    sys.stdout.write(f"{note}\n")

    _section("Where a step's time goes: best µs of each phase (1 BLAS thread)")
    with throughput.blas_threads(1):
        if args.quick:
            steps = profile.profile_steps((20, 12, 8, 3), batch_size=8, repeats=3)
        else:
            steps = profile.profile_steps(repeats=150)
    sys.stdout.write(profile.format_profile(steps) + "\n")

    _section("Stage 4: backward pass on chains and diamonds")
    sizes = (10, 100) if args.quick else graph.SIZES
    sys.stdout.write(graph.format_table(graph.run(sizes)) + "\n")

    _section("Other timings (utils/benchmarks/*.py, bench_* functions)")
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if info.name in _TABLE_MODULES or args.quick:
            continue
        module = importlib.import_module(f"utils.benchmarks.{info.name}")
        for name in sorted(n for n in dir(module) if n.startswith("bench_")):
            for timing in getattr(module, name)():
                sys.stdout.write(f"[{info.name}] {timing}\n")

    if not (args.quick or args.no_notebooks):
        from utils.benchmarks import notebooks

        _section("Notebooks (one BLAS thread, fresh kernel each) and check calls")
        start = time.perf_counter()
        timings = [notebooks.time_notebook(p) for p in notebooks.default_notebooks()]
        sys.stdout.write(notebooks.format_timings(timings) + "\n")
        sys.stdout.write(
            f"{len(timings)} notebooks in {time.perf_counter() - start:.0f} s; "
            f"{load_average()}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
