"""How long each notebook takes to execute, and each check call inside it.

:func:`time_notebook` executes a MyST notebook (read with jupytext) in a fresh
kernel, the way nbval does in CI, with one cell added at the top that wraps every
public check function of ``utils.check.lab*`` with a timer, and one at the end that
prints the timings. The course's budgets: a notebook under a minute on a 2-core
machine, a check call under a second.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

NOTEBOOK_BUDGET_S = 60.0
CHECK_BUDGET_S = 1.0
_MARKER = "__BENCH_CHECK_TIMES__"

# Runs in the kernel before the notebook: every public function of the check modules
# records (lab, name, seconds) of its outermost calls.
_SETUP = """
import functools as _bench_functools, importlib as _bench_importlib
import time as _bench_time
_bench_times, _bench_depth = [], [0]

def _bench_wrap(module):
    lab = module.__name__.rsplit(".", 1)[-1]
    for name, fn in list(vars(module).items()):
        mine = getattr(fn, "__module__", "") == module.__name__
        if name.startswith("_") or name == "summary" or isinstance(fn, type):
            continue
        if not callable(fn) or not mine:
            continue

        @_bench_functools.wraps(fn)
        def timed(*args, _fn=fn, _name=name, **kwargs):
            _bench_depth[0] += 1
            start = _bench_time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                _bench_depth[0] -= 1
                if _bench_depth[0] == 0:
                    elapsed = _bench_time.perf_counter() - start
                    _bench_times.append((lab, _name, elapsed))

        setattr(module, name, timed)

for _bench_lab in ("lab1", "lab2", "lab3", "lab4", "lab5"):
    try:
        _bench_wrap(_bench_importlib.import_module("utils.check." + _bench_lab))
    except ImportError:
        pass
"""

_REPORT = f"""
import json as _bench_json
print({_MARKER!r} + _bench_json.dumps(_bench_times))
"""


@dataclass
class NotebookTiming:
    """One notebook's execution time and its check calls."""

    path: str
    seconds: float
    checks: list[tuple[str, str, float]] = field(default_factory=list)
    error: str = ""

    @property
    def slowest(self) -> tuple[str, str, float] | None:
        return max(self.checks, key=lambda c: c[2], default=None)


def default_notebooks(root: str | os.PathLike[str] = ".") -> list[Path]:
    """The notebooks CI executes: the chapters ``book/0*.md`` and ``solutions/``."""
    root = Path(root)
    return sorted(root.glob("book/0*.md")) + sorted(root.glob("solutions/*.md"))


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def time_notebook(path: str | os.PathLike[str], timeout: int = 600) -> NotebookTiming:
    """Execute one notebook in a fresh kernel; time it and its check calls.

    The kernel runs with one BLAS thread, as in CI. The time includes starting the
    kernel, as nbval's does.

    Args:
        path: a MyST ``.md`` notebook (or an ``.ipynb``).
        timeout: seconds allowed per cell.

    Returns:
        The timing; ``error`` says why if the notebook failed (the time is then the
        time until the failure).
    """
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = jupytext.read(path)
    nb.cells.insert(0, nbformat.v4.new_code_cell(_SETUP))
    nb.cells.append(nbformat.v4.new_code_cell(_REPORT))
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    error = ""
    start = time.perf_counter()
    with _environ(OPENBLAS_NUM_THREADS="1", TQDM_DISABLE="1"):
        try:
            client.execute()
        except Exception as exc:  # noqa: BLE001 - report the failure, keep going
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:]}"
    seconds = time.perf_counter() - start
    checks: list[tuple[str, str, float]] = []
    for output in nb.cells[-1].get("outputs", []):
        text = output.get("text", "")
        if _MARKER in text:
            raw = text.split(_MARKER, 1)[1].strip()
            checks = [(lab, name, float(s)) for lab, name, s in json.loads(raw)]
    return NotebookTiming(str(path), seconds, checks, error)


def format_timings(timings: Sequence[NotebookTiming]) -> str:
    """A line per notebook (time, check calls, slowest) and the check calls over
    budget."""
    width = max((len(t.path) for t in timings), default=8) + 2
    lines = [f"{'notebook':<{width}}{'seconds':>9}{'checks':>8}  slowest check call"]
    slow: list[str] = []
    for t in timings:
        worst = t.slowest
        worst_text = f"{worst[0]}.{worst[1]} {worst[2]:.2f} s" if worst else "-"
        flag = "  OVER 60 s" if t.seconds > NOTEBOOK_BUDGET_S else ""
        flag += f"  FAILED: {t.error}" if t.error else ""
        lines.append(
            f"{t.path:<{width}}{t.seconds:>9.1f}{len(t.checks):>8}  {worst_text}{flag}"
        )
        slow += [
            f"  {lab}.{name}: {s:.2f} s ({t.path})"
            for lab, name, s in t.checks
            if s > CHECK_BUDGET_S
        ]
    by_lab: dict[str, list[float]] = {}
    for t in timings:
        for lab, _, s in t.checks:
            by_lab.setdefault(lab, []).append(s)
    for lab, times in sorted(by_lab.items()):
        lines.append(
            f"{lab}: {len(times)} check calls, {sum(times):.2f} s in all, "
            f"slowest {max(times):.2f} s"
        )
    if slow:
        lines.append(f"check calls over {CHECK_BUDGET_S:g} s:")
        lines += slow
    else:
        lines.append(f"every check call took under {CHECK_BUDGET_S:g} s")
    return "\n".join(lines)
