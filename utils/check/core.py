"""The shared core of every student-facing check.

A check runs the student's implementation and the reference implementation on the
same seeded cases and compares what they return, in a fixed order:

1. does it run?           (an untouched stub says "not implemented yet")
2. type and shape         (None, a list instead of an array, (4, 3) instead of (3, 4))
3. NaN or inf             (an overflowing softmax, a log of zero)
4. values                 (``np.allclose`` with the tolerance stated in the message)
5. inputs left untouched  (a function that edits its argument in place)

When something is wrong, the message says what and where (the case, the worst index,
the value got and expected, the tolerance) and, when the output matches a known
mistake, a hint. It never shows the reference code or the full expected array.

A check never raises: it returns a :class:`CheckResult`, which renders as one line in a
notebook. The exception is *strict mode* (environment variable ``NN_CHECK_STRICT=1``,
set by ``make test`` when it executes the solutions): there a check that does not
pass raises :class:`CheckFailed`, so a broken solution fails CI.
"""

from __future__ import annotations

import copy
import html
import linecache
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_UTILS_DIR = str(Path(__file__).resolve().parent.parent)

PASSED = "passed"
FAILED = "failed"
NOT_IMPLEMENTED = "not implemented yet"
NOT_RUN = "not run"

RTOL = 1e-4  # float32 arithmetic: about 7 significant digits, minus what sums lose
ATOL = 1e-5


class CheckFailed(AssertionError):
    """Raised in strict mode (``NN_CHECK_STRICT=1``) by a check that does not pass."""


def strict_mode() -> bool:
    """Whether failing checks raise (CI executing the solutions) or just report."""
    return os.environ.get("NN_CHECK_STRICT", "") not in ("", "0", "false")


# --------------------------------------------------------------------------- results
@dataclass
class CheckResult:
    """What a check found. Displays as one line on success, a short report otherwise.

    Attributes:
        name: the exercise, e.g. ``"softmax"``.
        status: ``"passed"``, ``"failed"`` or ``"not implemented yet"``.
        cases_passed: how many cases agreed with the reference.
        cases_total: how many cases were tried.
        message: what is wrong and where (empty on success).
        hint: a suggestion when the output matches a recognised mistake.
    """

    name: str
    status: str
    cases_passed: int = 0
    cases_total: int = 0
    message: str = ""
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __bool__(self) -> bool:
        return self.passed

    def text(self) -> str:
        if self.status == PASSED:
            return f"✅ {self.name}: all {self.cases_total} cases passed."
        if self.status == NOT_IMPLEMENTED:
            where = ""
            if _is_stub_name(self.message):
                if self.message != self.name:
                    where = f" (`{self.message}` is still a stub)"
            elif self.message:
                where = f" ({self.message})"
            return (
                f"⏳ {self.name}: not implemented yet{where}: replace the "
                "`raise NotImplementedError` line with your code, then run this again."
            )
        lines = [
            f"❌ {self.name}: {self.cases_passed} of {self.cases_total} cases passed."
        ]
        lines += ["   " + line for line in self.message.splitlines()]
        if self.hint:
            lines.append(f"   💡 Hint: {self.hint}")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        colour = {PASSED: "#1a7f37", NOT_IMPLEMENTED: "#9a6700"}.get(
            self.status, "#cf222e"
        )
        body = html.escape(self.text())
        return (
            f'<pre style="border-left: 4px solid {colour}; padding: 0.4em 0.8em; '
            f'white-space: pre-wrap">{body}</pre>'
        )


def _is_stub_name(text: str) -> bool:
    """Whether ``text`` is a stub's name, like ``relu`` or ``Linear.forward``."""
    return bool(text) and all(part.isidentifier() for part in text.split("."))


@dataclass
class Problem:
    """One thing found wrong with one case (internal)."""

    message: str
    hint: str = ""
    got: Any = None  # the part of the output that differs, for generic hints
    expected: Any = None


# --------------------------------------------------------------------------- cases
@dataclass
class Case:
    """One input on which the student's code and the reference are compared.

    Attributes:
        name: shown to the student, e.g. ``"a batch of one"``.
        args: positional arguments. Each implementation gets its own deep copy, so
            neither can change the other's inputs, nor the student's arrays.
        kwargs: keyword arguments, copied the same way.
        run: how to run an implementation on this case, ``run(impl, *args, **kwargs)``;
            by default the implementation is called with the arguments. Class
            exercises use it to build an object, call its methods and return what
            should be compared.
        may_modify: names (``"arg0"``, ``"arg1"``... or keyword names) of the inputs
            that the exercise is meant to change in place, like ``params`` in an
            update step; every other input must come back unchanged.
    """

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    run: Callable[..., Any] | None = None
    may_modify: tuple[str, ...] = ()

    def execute(self, impl: Callable) -> tuple[Any, tuple, dict]:
        """Run ``impl`` on fresh copies of the inputs; return (output, args, kwargs)."""
        args = copy.deepcopy(self.args)
        kwargs = copy.deepcopy(self.kwargs)
        with np.errstate(all="ignore"):  # overflow shows up as inf/NaN, diagnosed below
            if self.run is None:
                out = impl(*args, **kwargs)
            else:
                out = self.run(impl, *args, **kwargs)
        return out, args, kwargs


class Inputs:
    """Seeded inputs for a lab's cases, float32 like the course's arrays.

    Each lab has its own ``base_seed``, so that two labs never test on the same
    numbers; ``seed`` tells the cases of one lab apart.
    """

    def __init__(self, base_seed: int):
        self.base_seed = base_seed

    def rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng(self.base_seed + seed)

    def randn(self, shape, seed: int, scale: float = 1.0) -> np.ndarray:
        """Standard normal values times ``scale``, float32."""
        return (self.rng(seed).standard_normal(shape) * scale).astype(np.float32)

    def labels(self, n: int, num_classes: int, seed: int) -> np.ndarray:
        """``n`` integer labels in ``[0, num_classes)``."""
        return self.rng(seed).integers(0, num_classes, size=n)


@dataclass
class Mistake:
    """A recognised mistake: an implementation of it, and the hint to give.

    If, on a failing case, the student's output agrees with ``impl``'s output, the
    student probably made this mistake and sees ``hint``.
    """

    hint: str
    impl: Callable


# --------------------------------------------------------------------------- errors
def _student_frame(tb) -> tuple[str, int, str] | None:
    """The innermost traceback frame that belongs to the student, not to a library."""
    found = None
    for frame, lineno in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if filename.startswith(_UTILS_DIR) or "site-packages" in filename:
            continue
        if filename.startswith("<frozen") or "/lib/python3" in filename:
            continue
        found = (filename, lineno, frame.f_code.co_name)
    if found is None:
        return None
    line = linecache.getline(found[0], found[1]).strip()
    return found[0], found[1], line


def describe_exception(exc: BaseException) -> str:
    """One or two lines: the exception, and the line of student code that raised it."""
    text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    where = _student_frame(exc.__traceback__)
    if where is not None:
        _, lineno, line = where
        if line:
            text += f"\nraised by this line of your code (line {lineno}): {line}"
    return text


# --------------------------------------------------------------------------- compare
def _fmt(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.6g}"
    return repr(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, bool
    )


def compare(
    got: Any,
    expected: Any,
    where: str,
    rtol: float = RTOL,
    atol: float = ATOL,
    names: Sequence[str] = (),
) -> Problem | None:
    """Compare one output with the reference's; ``None`` when they agree.

    Handles arrays, numbers, ``None``, and dicts, tuples and lists of those (compared
    item by item, so a message can say ``grads['W1']``). ``names`` labels the items
    of a tuple output, e.g. ``("dx", "dW", "db")``.
    """
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return Problem(
                f"{where} should be a dict with keys {sorted(expected)}, "
                f"but your code returned {type(got).__name__}."
            )
        missing = [k for k in expected if k not in got]
        if missing:
            return Problem(f"{where} is missing the key(s) {missing}.")
        for key in expected:
            problem = compare(got[key], expected[key], f"{where}[{key!r}]", rtol, atol)
            if problem:
                return problem
        return None
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return Problem(
                f"{where} should be a {type(expected).__name__} of {len(expected)} "
                f"items, but your code returned {type(got).__name__}."
            )
        if len(got) != len(expected):
            return Problem(
                f"{where} should have {len(expected)} items, but has {len(got)}."
            )
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            label = f"`{names[i]}`" if i < len(names) else f"{where}[{i}]"
            problem = compare(g, e, label, rtol, atol)
            if problem:
                return problem
        return None
    if expected is None:
        if got is not None:
            return Problem(
                f"{where} should be None (the function works in place), but your "
                f"code returned {type(got).__name__}."
            )
        return None
    if isinstance(expected, (bool, np.bool_)):
        if got != expected:
            return Problem(f"{where} should be {expected}, got {got!r}.")
        return None
    if isinstance(expected, str):
        if got != expected:
            return Problem(f"{where} should be {expected!r}, got {got!r}.")
        return None
    problem = _compare_arrays(got, expected, where, rtol, atol)
    if problem is not None:
        problem.got, problem.expected = got, expected
    return problem


def _compare_arrays(
    got: Any, expected: Any, where: str, rtol: float, atol: float
) -> Problem | None:
    scalar = _is_number(expected) or (
        isinstance(expected, np.ndarray) and expected.ndim == 0
    )
    if got is None:
        return Problem(
            f"{where} is None: did you forget the `return` statement?",
        )
    if scalar:
        if isinstance(got, np.ndarray) and got.size == 1:
            got = got.reshape(())
        elif not _is_number(got) and not (
            isinstance(got, np.ndarray) and got.ndim == 0
        ):
            shape = getattr(got, "shape", None)
            extra = f" of shape {shape}" if shape is not None else ""
            return Problem(
                f"{where} should be a single number, but your code returned "
                f"{type(got).__name__}{extra}.",
                "a loss is one number for the whole batch: average (np.mean) over "
                "the examples.",
            )
    elif not isinstance(got, np.ndarray):
        return Problem(
            f"{where} should be a NumPy array of shape {expected.shape}, but your "
            f"code returned {type(got).__name__}."
        )
    got_arr = np.asarray(got)
    exp_arr = np.asarray(expected)
    if got_arr.dtype.kind not in "fiub":
        return Problem(
            f"{where} has dtype {got_arr.dtype}; expected numbers ({exp_arr.dtype})."
        )
    if got_arr.shape != exp_arr.shape:
        return Problem(
            f"{where} has shape {got_arr.shape}, but it should have shape "
            f"{exp_arr.shape}."
        )
    got_f = got_arr.astype(np.float64)
    exp_f = exp_arr.astype(np.float64)
    bad_got = ~np.isfinite(got_f)
    bad_exp = ~np.isfinite(exp_f)
    if np.any(bad_got & ~bad_exp):
        idx = tuple(int(i) for i in np.argwhere(bad_got & ~bad_exp)[0])
        at = f" at index {idx}" if got_f.ndim else ""
        return Problem(
            f"{where} contains {_fmt(got_f[idx])}{at}, where the expected value is "
            f"{_fmt(exp_f[idx])}. Something overflowed or took the log of zero."
        )
    close = np.isclose(got_f, exp_f, rtol=rtol, atol=atol, equal_nan=True)
    if np.all(close):
        return None
    err = np.where(close, 0.0, np.abs(got_f - exp_f))
    idx = tuple(int(i) for i in np.unravel_index(np.argmax(err), err.shape))
    at = f" at index {idx}" if got_f.ndim else ""
    n_bad = int(np.sum(~close))
    count = f" ({n_bad} of {close.size} entries differ)" if got_f.ndim else ""
    return Problem(
        f"{where} has wrong values{count}. Worst{at}: got {_fmt(got_f[idx])}, "
        f"expected {_fmt(exp_f[idx])} (tolerance: rtol={rtol:g}, atol={atol:g})."
    )


def agrees(got: Any, other: Any, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Whether ``got`` matches ``other`` (used to recognise mistakes)."""
    try:
        return compare(got, other, "output", rtol, atol) is None
    except Exception:  # noqa: BLE001 - a mistake model that cannot compare: no match
        return False


def _unchanged(before: Any, after: Any) -> bool:
    if isinstance(before, np.ndarray):
        return (
            isinstance(after, np.ndarray)
            and before.shape == after.shape
            and np.array_equal(before, after, equal_nan=True)
        )
    if isinstance(before, dict):
        return (
            isinstance(after, dict)
            and before.keys() == after.keys()
            and all(_unchanged(before[k], after[k]) for k in before)
        )
    if isinstance(before, (list, tuple)):
        return (
            isinstance(after, (list, tuple))
            and len(before) == len(after)
            and all(_unchanged(b, a) for b, a in zip(before, after, strict=True))
        )
    return True  # objects, numbers: not inspected


# --------------------------------------------------------------------------- diagnose
def generic_hint(got: Any, expected: Any, batch_size: int | None) -> str:
    """Hints that apply to any array output: transposed, sign, a factor of N, ..."""
    if isinstance(expected, (dict, tuple, list)):
        return ""
    try:
        got_arr = np.asarray(got, dtype=np.float64)
        exp_arr = np.asarray(expected, dtype=np.float64)
    except (TypeError, ValueError):
        return ""
    if (
        exp_arr.ndim == 2
        and got_arr.shape == exp_arr.T.shape
        and exp_arr.shape[0] != exp_arr.shape[1]
        and agrees(got_arr, exp_arr.T)
    ):
        return (
            "your result is the transpose of the expected one: check the order "
            "of the matrix product (for example `X.T @ dz`, not `dz.T @ X`)."
        )
    if got_arr.ndim == exp_arr.ndim + 1 and got_arr.shape[1:] == exp_arr.shape:
        return (
            f"this has one row per example, shape {got_arr.shape}: a parameter's "
            "gradient is summed over the batch, `.sum(axis=0)`."
        )
    if got_arr.shape != exp_arr.shape:
        return ""
    if not np.any(exp_arr):
        return ""
    if agrees(got_arr, -exp_arr):
        return "your result has the wrong sign everywhere: check for a flipped minus."
    if batch_size and batch_size > 1:
        if agrees(got_arr, exp_arr * batch_size):
            return (
                f"your result is {batch_size}× too large, {batch_size} being the batch "
                "size: divide by N (the loss is a mean over the batch)."
            )
        if agrees(got_arr, exp_arr / batch_size):
            return (
                f"your result is {batch_size}× too small, {batch_size} being the "
                "batch size: you divided by N twice (or where it was not needed)."
            )
    return ""


def _batch_size(case: Case) -> int | None:
    for arg in list(case.args) + list(case.kwargs.values()):
        if isinstance(arg, np.ndarray) and arg.ndim >= 1:
            return int(arg.shape[0])
    return None


def _arg_name(i_or_key: int | str, names: Sequence[str]) -> str:
    if isinstance(i_or_key, int):
        return names[i_or_key] if i_or_key < len(names) else f"argument {i_or_key}"
    return i_or_key


# --------------------------------------------------------------------------- run
def run_check(
    name: str,
    student: Any,
    reference: Any,
    cases: Iterable[Case],
    *,
    mistakes: Sequence[Mistake] = (),
    hints: Sequence[Callable[[Any, Any, Case], str]] = (),
    arg_names: Sequence[str] = (),
    output_names: Sequence[str] = (),
    rtol: float = RTOL,
    atol: float = ATOL,
    record: Callable[[CheckResult], None] | None = None,
) -> CheckResult:
    """Compare ``student`` with ``reference`` on every case; report the first problem.

    Args:
        name: the exercise's name, as the student knows it.
        student: the student's function or class.
        reference: the reference function or class (same interface).
        cases: the inputs (see :class:`Case`).
        mistakes: recognised mistakes, tried in order on the first failing case.
        hints: extra diagnosers ``hint(got, expected, case) -> str`` (empty: no idea).
        arg_names: the parameter names, to say which input was modified in place.
        output_names: names of the items of a tuple output, e.g. ``("dx", "dW")``.
        rtol: relative tolerance for values.
        atol: absolute tolerance for values.
        record: called with the result (a lab's summary table uses it).

    Returns:
        The :class:`CheckResult`. In strict mode a result that did not pass raises
        :class:`CheckFailed` instead.
    """
    cases = list(cases)
    result = _run(
        name,
        student,
        reference,
        cases,
        mistakes,
        hints,
        arg_names,
        output_names,
        rtol,
        atol,
    )
    return finish(result, record)


def finish(
    result: CheckResult, record: Callable[[CheckResult], None] | None = None
) -> CheckResult:
    """Record a result, and raise it in strict mode if it did not pass."""
    if record is not None:
        record(result)
    if strict_mode() and not result.passed:
        raise CheckFailed(result.text())
    return result


def _run(
    name,
    student,
    reference,
    cases,
    mistakes,
    hints,
    arg_names,
    output_names,
    rtol,
    atol,
):
    total = len(cases)
    if not callable(student):
        return CheckResult(
            name,
            FAILED,
            0,
            total,
            f"`{name}` should be a function (or class), but it is "
            f"{type(student).__name__}.",
            "pass the function itself, without calling it: check(f), not check(f()).",
        )
    for passed, case in enumerate(cases):
        expected, _, _ = case.execute(reference)
        try:
            got, args_after, kwargs_after = case.execute(student)
        except NotImplementedError as exc:
            # the generated stubs raise NotImplementedError("<function name>")
            stub = str(exc).strip()
            return CheckResult(name, NOT_IMPLEMENTED, 0, total, stub)
        except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
            return CheckResult(
                name,
                FAILED,
                passed,
                total,
                f"Case '{case.name}': your code raised an error.\n"
                + describe_exception(exc),
                _exception_hint(exc),
            )
        problem = compare(got, expected, "the result", rtol, atol, output_names)
        if problem is None:
            problem = _mutation_problem(case, args_after, kwargs_after, arg_names)
        if problem is None:
            continue
        hint = problem.hint or _diagnose(got, expected, case, mistakes, hints, problem)
        return CheckResult(
            name, FAILED, passed, total, f"Case '{case.name}': {problem.message}", hint
        )
    return CheckResult(name, PASSED, total, total)


def _mutation_problem(case, args_after, kwargs_after, arg_names) -> Problem | None:
    for i, (before, after) in enumerate(zip(case.args, args_after, strict=True)):
        label = f"arg{i}"
        if label in case.may_modify or _arg_name(i, arg_names) in case.may_modify:
            continue
        if not _unchanged(before, after):
            arg = _arg_name(i, arg_names)
            return Problem(
                f"your code changed its input `{arg}` in place.",
                f"work on a new array (e.g. `{arg} = {arg} + 1`, or `{arg}.copy()`) "
                f"rather than editing the caller's (`{arg} += 1`, "
                f"`{arg}[{arg} < 0] = 0`): the caller may still need it, for "
                "example in the backward pass.",
            )
    for key, before in case.kwargs.items():
        if key in case.may_modify:
            continue
        if not _unchanged(before, kwargs_after[key]):
            return Problem(
                f"your code changed its input `{key}` in place.",
                "work on a copy rather than editing the caller's array.",
            )
    return None


def _diagnose(got, expected, case, mistakes, hints, problem: Problem) -> str:
    for mistake in mistakes:
        try:
            wrong, _, _ = case.execute(mistake.impl)
        except Exception:  # noqa: BLE001, S112 - a model of a mistake may not apply
            continue
        if agrees(got, wrong):
            return mistake.hint
    for diagnose in hints:
        try:
            hint = diagnose(got, expected, case)
        except Exception:  # noqa: BLE001, S112
            hint = ""
        if hint:
            return hint
    if problem.expected is not None:
        return generic_hint(problem.got, problem.expected, _batch_size(case))
    return ""


def _exception_hint(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ValueError) and "broadcast" in text:
        return (
            "two arrays' shapes don't broadcast: a sum or max over each row, "
            "(N, C) -> (N,), needs keepdims=True to give (N, 1), which broadcasts "
            "back against (N, C)."
        )
    if isinstance(exc, ValueError) and ("matmul" in text or "aligned" in text):
        return (
            "the shapes of a matrix product don't fit: write the shape of every "
            "array next to it, e.g. X is (N, D) and W1 is (D, H), so X @ W1 is "
            "(N, H)."
        )
    if isinstance(exc, TypeError) and "as a data type" in text:
        return (
            "a shape goes in as one tuple: np.zeros((rows, cols)), not "
            "np.zeros(rows, cols) (the second argument is the dtype)."
        )
    if isinstance(exc, (KeyError, IndexError)):
        return "check the names and indices you use against the docstring."
    if isinstance(exc, NameError):
        return (
            "did you run the cells above this one (Run → Run All Above Selected Cell)?"
        )
    return ""


# --------------------------------------------------------------------------- summary
class Lab:
    """The ordered exercises of one lab, and the latest result of each."""

    def __init__(self, title: str, exercises: Sequence[str]):
        self.title = title
        self.exercises = list(exercises)
        self.results: dict[str, CheckResult] = {}

    def record(self, result: CheckResult) -> None:
        self.results[result.name] = result

    def summary(self) -> Summary:
        """A table of the lab's exercises and where each stands."""
        rows = []
        for ex in self.exercises:
            res = self.results.get(ex)
            rows.append((ex, NOT_RUN if res is None else res.status))
        summary = Summary(self.title, rows)
        if strict_mode() and not summary.all_passed:
            raise CheckFailed(summary.text())
        return summary


@dataclass
class Summary:
    """The table a lab's last cell shows."""

    title: str
    rows: list[tuple[str, str]]

    @property
    def all_passed(self) -> bool:
        return all(status == PASSED for _, status in self.rows)

    def text(self) -> str:
        icons = {PASSED: "✅", FAILED: "❌", NOT_IMPLEMENTED: "⏳", NOT_RUN: "·"}
        width = max(len(ex) for ex, _ in self.rows)
        done = sum(status == PASSED for _, status in self.rows)
        lines = [f"{self.title}: {done} of {len(self.rows)} exercises passed"]
        lines += [
            f"  {icons.get(status, '?')} {ex:<{width}}  {status}"
            for ex, status in self.rows
        ]
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        icons = {PASSED: "✅", FAILED: "❌", NOT_IMPLEMENTED: "⏳", NOT_RUN: "·"}
        done = sum(status == PASSED for _, status in self.rows)
        rows = "".join(
            f"<tr><td>{icons.get(s, '?')}</td><td><code>{html.escape(ex)}</code></td>"
            f"<td>{html.escape(s)}</td></tr>"
            for ex, s in self.rows
        )
        return (
            f"<p><b>{html.escape(self.title)}</b>: {done} of {len(self.rows)} "
            f"exercises passed</p><table>{rows}</table>"
        )
