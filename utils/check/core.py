"""The shared core of every student-facing check.

A check runs the student's implementation and the reference implementation on the
same seeded cases and compares what they return, in a fixed order:

1. does it run?           (an untouched stub says "not implemented yet"; a function
                          still running after ``TIMEOUT_S`` seconds is stopped)
2. type and shape         (None, a list instead of an array, (4, 3) instead of (3, 4),
                          an ``np.matrix`` or masked array instead of a plain array)
3. NaN or inf             (an overflowing softmax, a log of zero)
4. values                 (``np.allclose`` with the tolerance stated in the message)
5. dtype kept             (a float64 result where the reference gives float32)
6. in place               (inputs named in ``Case.in_place`` must be the same array
                          objects afterwards, changed, not rebound to new arrays)
7. inputs left untouched  (a function that edits an argument it should only read)

When something is wrong, the message says what and where (the case, the worst index,
the value got and expected, the tolerance) and, when the output matches a known
mistake, a hint. It never shows the reference code or the full expected array.

A check never raises, whatever the student's code returns or raises: it returns a
:class:`CheckResult`, which renders as one line in a notebook. A student function
still running after ``TIMEOUT_S`` seconds (5, or ``$NN_CHECK_TIMEOUT``) is stopped and
reported in one line, and so is an interrupt (Kernel → Interrupt) during a check. The
exception is *strict mode* (environment variable ``NN_CHECK_STRICT=1``, set by ``make
test`` when it executes the solutions): there a check that does not pass raises
:class:`CheckFailed`, so a broken solution fails CI.

A lab module (``utils/check/labN.py``) defines ``LAB = Lab(title, exercises,
references={exercise: reference implementation}, module=__name__)`` and one check
function per exercise. ``module=__name__`` makes the module's check functions
guarded (never raise, time limit, a check run on the reference reports "used the
reference") and gives the module three lab-wide helpers, with no code of its own:

* ``check.reference("relu")``: the reference implementation, for a student who is
  stuck; the summary lists the exercise as "used the reference", never as passed.
* ``if check.ready("forward", "backward"):``: guards a demo or training cell; when an
  exercise it needs has not passed (nor uses the reference) it prints one line,
  "⏳ waiting for: ...", and the cell skips, so Run All reaches the summary.
* ``check.results_as_dict()``: the lab's results as data (see
  :meth:`Lab.results_as_dict`), which the batch grader writes as JSON.

Case design: how to choose cases that no plausible wrong implementation passes
------------------------------------------------------------------------------
A wrong implementation that passes teaches the student that it is right, so the cases
of every check (stage 4 included) are chosen to separate the right answer from every
way of being almost right:

* **Uneven sizes.** Sizes that do not divide each other: a number of examples that is
  not a multiple of the batch size, so the last batch is smaller (a loop that drops or
  pads it, or divides by ``batch_size`` instead of the batch's length, shows).
* **Equal shapes.** Several parameters of the same shape in optimizer and model cases
  (state keyed by shape, or shared between parameters, shows), and square matrices
  next to non-square ones (a transpose shows in values, not only in shape).
* **N != C and N = 1.** Wherever a shape can be confused: a batch of one, and a batch
  size different from the number of classes and features (a sum over the wrong axis
  broadcasts silently when they are equal).
* **Wide-spread logits.** Rows hundreds apart, in both directions (±1000), and rows
  far from each other, so a softmax that forgets to subtract its row's own maximum
  overflows or underflows.
* **Tiny probabilities.** Correct classes with probabilities far below 1e-3, so that a
  clipped or epsilon-shifted log shows.
* **Deep models.** Models of more than ten modules, so that code that only looks at
  the first or last few layers, or recurses badly, shows.
* **Views and non-contiguous inputs.** Slices, transposes and strided views as
  inputs, so that code relying on a fresh contiguous array, or writing through a
  view, shows.
* **dtype kept.** float32 inputs give float32 outputs; :func:`compare` fails a float64
  result automatically (:data:`FLOAT64_HINT`).
* **In place.** Where the exercise says "in place", name the inputs in
  ``Case.in_place`` (or call :func:`require_in_place` in a class check's ``run``):
  the caller's array objects must be changed, not rebound to new arrays.
* **State between calls.** Call methods more than once on the same object (two
  batches in a row, backward twice), so that state carried between calls shows, and
  end each lab with an integration check that runs the student's pieces together.
* **Not all parallel, square, positive or of one sign.** Pairs that point different
  ways (orthogonal, unrelated, opposite: ``norm(a + b)`` for ``norm(a) + norm(b)``
  shows), non-square next to square, and inputs of mixed signs with exact zeros.
* **State read twice.** Whatever backward reads from a cache, call it twice on the
  same forward and compare the cache afterwards: a backward that edits its cache in
  place (``self.probs[..., y] -= 1``) is right once and wrong the second time.
  Every layer of lab 2, lab 3's Linear and Dropout and every Function of lab 4 is
  run backward twice on one forward; a second backward that raises says so.
* **dtype of every kind.** The result must have the data's dtype: bool, int and
  float64 all fail (and float64 where float64 is promised, a float32 input
  included), each with its own hint; :func:`compare` fails a bool, integer or
  float16 result where float32 is expected by itself (:data:`OTHER_DTYPE_HINT`).
* **Restore after a nudge.** Whatever is changed and put back (a numerical
  gradient's entries) must come back bit for bit: ``x + h - 2h + h`` rounds.
* **Earlier pieces first.** A check that fails while a piece it calls has failed
  its own check names that piece first (:mod:`utils.check.prereq`); a demo or
  training cell's ``check.ready`` lists every exercise it runs, directly or
  through another.
* **Fast.** Every check call takes well under a second: small arrays, few cases.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import html
import linecache
import os
import re
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_UTILS_DIR = str(Path(__file__).resolve().parent.parent)

PASSED = "passed"
FAILED = "failed"
NOT_IMPLEMENTED = "not implemented yet"
NOT_RUN = "not run"
USED_REFERENCE = "used the reference"

RTOL = 1e-4  # float32 arithmetic: about 7 significant digits, minus what sums lose
ATOL = 1e-5


def _timeout_seconds() -> float:
    try:
        return float(os.environ.get("NN_CHECK_TIMEOUT", "5"))
    except ValueError:
        return 5.0


TIMEOUT_S = _timeout_seconds()  # a check stops the student's code after this long

FLOAT64_HINT = (
    "the inputs are float32 and so is the expected result, but yours is float64. "
    "float64 takes twice the memory and is slower, and it spreads: every array "
    "computed from it afterwards silently becomes float64 too. The common causes: "
    "an array created without a dtype (np.zeros(shape), np.ones, np.zeros_like(x, "
    "dtype=float), np.array of Python floats, a random draw); .astype(float) "
    "(Python's float is float64); a bool or integer array turned into numbers with "
    "* 1.0 (or np.float64 scalars). Give it the dtype of the data, e.g. "
    ".astype(x.dtype) or dtype=x.dtype."
)
OTHER_DTYPE_HINT = (
    "the inputs are float32 and so is the expected result, but yours holds bools or "
    "integers (or float16). A comparison such as x > 0 gives a bool array, and "
    "np.ones(shape, dtype=int) or integer arithmetic an integer one: their values "
    "may look right, but the next step (an in-place update, a product with float32 "
    "data) silently changes them or their precision. Give the result the dtype of "
    "the data, e.g. (x > 0).astype(x.dtype) or dtype=x.dtype."
)
IN_PLACE_HINT = (
    "this update is defined as in place: change the values inside the existing "
    "arrays (augmented assignment, or assigning into a slice) instead of binding the "
    "name to a new array. Whoever else holds the old array (the model, the caller's "
    "dict) would never see a rebound one."
)


class CheckFailed(AssertionError):
    """Raised in strict mode (``NN_CHECK_STRICT=1``) by a check that does not pass."""


class CheckTimeout(BaseException):  # noqa: N818 - not an Exception on purpose
    """Raised inside the student's code when a check's time limit is reached.

    A ``BaseException``, so that a student's ``except Exception:`` cannot swallow it.
    """


class NotInPlace(Exception):  # noqa: N818 - reads as a sentence in the message
    """Raised by :func:`require_in_place` when an array was rebound, not updated."""


def strict_mode() -> bool:
    """Whether failing checks raise (CI executing the solutions) or just report."""
    return os.environ.get("NN_CHECK_STRICT", "") not in ("", "0", "false")


def _say(text: str) -> None:
    """Show one line to the student (the only output a check makes by itself).

    ``check.reference`` and ``check.ready`` are called where their return value is not
    displayed (an assignment, an ``if``), so they print their one line.
    """
    print(text)  # noqa: T201 - student-facing notebook output is this module's job


# --------------------------------------------------------------------------- safety
def _safe_repr(x: Any, limit: int = 60) -> str:
    """``repr(x)``, shortened, or a description when ``repr`` itself fails."""
    try:
        text = repr(x)
    except Exception:  # noqa: BLE001 - the student's object may raise anything
        return f"a {_type_name(x)} object"
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    space = cut.rfind(" ")
    if space >= limit // 2 and text[limit - 3] != " ":  # never mid-word
        cut = cut[:space]
    return cut.rstrip(" ;,") + "..."


def _type_name(x: Any) -> str:
    """A readable type: ``float``, ``numpy.matrix``, ``generator``."""
    cls = type(x)
    module = getattr(cls, "__module__", "")
    if module in ("builtins", "__main__", None, ""):
        return cls.__name__
    if module.startswith("numpy"):
        return f"numpy.{cls.__name__}"
    return cls.__name__


def _describe(x: Any) -> str:
    """What an object is, in words: type, and shape and dtype for arrays."""
    if isinstance(x, np.ndarray) and type(x) is np.ndarray:
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"{_type_name(x)}"


@contextlib.contextmanager
def time_limit(seconds: float | None = None) -> Iterator[None]:
    """Raise :class:`CheckTimeout` in this block after ``seconds`` (SIGALRM).

    Works in the main thread of a Unix process (a notebook kernel, pytest); elsewhere,
    or when a timer is already running (an enclosing ``time_limit``, or a test
    runner's own), the block simply runs without a limit.

    Args:
        seconds: the limit; ``None`` means :data:`TIMEOUT_S`, ``0`` no limit.
    """
    seconds = TIMEOUT_S if seconds is None else seconds
    usable = (
        seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if not usable:
        yield
        return

    def on_alarm(signum, frame):  # noqa: ARG001 - the signal handler's signature
        raise CheckTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _timeout_message(seconds: float) -> str:
    return f"did not finish in {seconds:g} s: is there a loop that never ends?"


INTERRUPTED_MESSAGE = (
    "interrupted (Kernel → Interrupt) before the check finished; run it again when "
    "your code is ready."
)


# --------------------------------------------------------------------------- results
_BACKTICKS = re.compile(r"`([^`\n]+)`")


def _plain(text: str) -> str:
    """Markdown inline code without its backticks, for plain-text output."""
    return _BACKTICKS.sub(r"\1", text)


def _html(text: str) -> str:
    """Escaped text with Markdown inline code as ``<code>``."""
    return _BACKTICKS.sub(r"<code>\1</code>", html.escape(text, quote=False))


_ICONS = {
    PASSED: "✅",
    FAILED: "❌",
    NOT_IMPLEMENTED: "⏳",
    NOT_RUN: "·",
    USED_REFERENCE: "📎",
}
_COLOURS = {PASSED: "#1a7f37", NOT_IMPLEMENTED: "#9a6700", USED_REFERENCE: "#0969da"}


@dataclass
class CheckResult:
    """What a check found. Displays as one line on success, a short report otherwise.

    Attributes:
        name: the exercise, e.g. ``"softmax"``.
        status: ``"passed"``, ``"failed"``, ``"not implemented yet"`` or ``"used the
            reference"``.
        cases_passed: how many cases agreed with the reference.
        cases_total: how many cases were tried.
        message: what is wrong and where (empty on success). May contain Markdown
            inline code (backticks): :meth:`text` drops them, the HTML shows code.
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

    def _markdown(self) -> str:
        """The report with Markdown inline code; :meth:`text` and the HTML render it."""
        if self.status == PASSED:
            return f"✅ {self.name}: all {self.cases_total} cases passed."
        if self.status == USED_REFERENCE:
            return (
                f"📎 {self.name}: uses the reference implementation "
                "(`check.reference`), so the summary lists it as used the reference, "
                "not passed. Write your own and run this check on it to pass."
            )
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
        if self.cases_total:
            count = f"{self.cases_passed} of {self.cases_total}"
            head = f"❌ {self.name}: {count} cases passed."
        else:
            head = f"❌ {self.name}: not passed."
        lines = [head]
        lines += ["   " + line for line in self.message.splitlines()]
        if self.hint:
            lines.append(f"   💡 Hint: {self.hint}")
        return "\n".join(lines)

    def text(self) -> str:
        """The report as plain text (no Markdown backticks)."""
        return _plain(self._markdown())

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        colour = _COLOURS.get(self.status, "#cf222e")
        return (
            f'<pre style="border-left: 4px solid {colour}; padding: 0.4em 0.8em; '
            f'white-space: pre-wrap">{_html(self._markdown())}</pre>'
        )

    def as_dict(self) -> dict[str, Any]:
        """The result as plain data (JSON-ready)."""
        return {
            "name": self.name,
            "status": self.status,
            "cases_passed": self.cases_passed,
            "cases_total": self.cases_total,
            "message": _plain(self.message),
            "hint": _plain(self.hint),
        }


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
class Execution:
    """What running one implementation on one case gave (internal).

    Attributes:
        out: what the implementation (or the case's ``run``) returned.
        args: the copies of the positional arguments, as the run left them.
        kwargs: the copies of the keyword arguments, as the run left them.
        refs: for each input named in ``Case.in_place``, the array objects it held
            before the run (see :func:`array_refs`).
    """

    out: Any
    args: tuple
    kwargs: dict
    refs: dict[str, Refs]


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
        may_modify: names (``"arg0"``, ``"arg1"``... or the names in ``arg_names``, or
            keyword names) of the inputs that the exercise may change; every other
            input must come back unchanged.
        in_place: names, as in ``may_modify``, of the inputs that the exercise defines
            as updated *in place* (``params`` in an update step): every array in them
            (also inside a dict, list or tuple) must still be the same array object
            afterwards. Implies ``may_modify``.
    """

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    run: Callable[..., Any] | None = None
    may_modify: tuple[str, ...] = ()
    in_place: tuple[str, ...] = ()

    def execute(self, impl: Callable) -> tuple[Any, tuple, dict]:
        """Run ``impl`` on fresh copies of the inputs; return (output, args, kwargs)."""
        run = self.run_case(impl)
        return run.out, run.args, run.kwargs

    def run_case(self, impl: Callable, arg_names: Sequence[str] = ()) -> Execution:
        """Run ``impl`` on fresh copies of the inputs, noting the in-place arrays."""
        args = copy.deepcopy(self.args)
        kwargs = copy.deepcopy(self.kwargs)
        refs = {}
        for i, arg in enumerate(args):
            if _named(i, arg_names, self.in_place):
                refs[_arg_name(i, arg_names)] = array_refs(arg)
        for key, value in kwargs.items():
            if key in self.in_place:
                refs[key] = array_refs(value)
        with np.errstate(all="ignore"):  # overflow shows up as inf/NaN, diagnosed below
            if self.run is None:
                out = impl(*args, **kwargs)
            else:
                out = self.run(impl, *args, **kwargs)
        return Execution(out, args, kwargs, refs)


def _named(i: int, arg_names: Sequence[str], names: Sequence[str]) -> bool:
    """Whether positional argument ``i`` is among ``names`` (``argI`` or its name)."""
    return f"arg{i}" in names or (i < len(arg_names) and arg_names[i] in names)


Refs = list[tuple[tuple, np.ndarray]]  # (keys from the container to it, the array)


def array_refs(obj: Any) -> Refs:
    """Every array in ``obj`` (an array, or a dict, list or tuple of them, nested).

    Keeps the array objects themselves, so that :func:`require_in_place` can tell
    afterwards whether each is still the one the caller holds.

    Args:
        obj: what to walk.

    Returns:
        ``[(keys, array), ...]``: the keys or indices leading to each array.
    """
    if isinstance(obj, np.ndarray):
        return [((), obj)]
    found: Refs = []
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        items = list(enumerate(obj))
    else:
        return found
    for key, value in items:
        found += [((key, *keys), array) for keys, array in array_refs(value)]
    return found


def _path(keys: tuple) -> str:
    return "".join(f"[{key!r}]" for key in keys)


def _at(obj: Any, keys: tuple) -> Any:
    """The item of ``obj`` at ``keys``, or ``None`` when it is not there any more."""
    for key in keys:
        in_dict = isinstance(obj, dict) and key in obj
        in_list = isinstance(obj, (list, tuple)) and isinstance(key, int)
        if not (in_dict or (in_list and key < len(obj))):
            return None
        obj = obj[key]
    return obj


def rebound(refs: Refs, after: Any) -> str | None:
    """The path of the first array in ``refs`` that ``after`` no longer holds.

    Args:
        refs: what :func:`array_refs` returned before the update.
        after: the same container (or an equivalent one) after the update.

    Returns:
        The path, e.g. ``"['W1']"`` (empty for a bare array), or ``None`` when every
        array object is still the same one.
    """
    for keys, array in refs:
        try:
            now = _at(after, keys)
        except Exception:  # noqa: BLE001 - a container the student replaced oddly
            now = None
        if now is not array:
            return _path(keys)
    return None


def require_in_place(refs: Refs, after: Any, what: str) -> None:
    """Raise :class:`NotInPlace` if an update rebound an array instead of changing it.

    For class checks, in a case's ``run``: take ``refs = array_refs([p.data for p in
    params])`` before ``optimizer.step()``, then ``require_in_place(refs, [p.data for p
    in params], "parameters' data")`` after it. :func:`run_check` reports the
    exception as a failed case, with :data:`IN_PLACE_HINT`.

    Args:
        refs: what :func:`array_refs` returned before the update.
        after: the same container after the update.
        what: names the container in the message; the path follows it.

    Raises:
        NotInPlace: with a sentence naming the first rebound array.
    """
    path = rebound(refs, after)
    if path is not None:
        raise NotInPlace(
            f"`{what}{path}` is a new array object after the update: it was replaced "
            "instead of being updated in place."
        )


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
def _notebook_frames(tb) -> list[tuple[str, int, str, str]]:
    """The traceback's frames in the notebook (not a library), outermost first:
    ``(filename, line number, function name, source line)``."""
    found = []
    for frame, lineno in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if filename.startswith(_UTILS_DIR) or "site-packages" in filename:
            continue
        if filename.startswith("<frozen") or "/lib/python3" in filename:
            continue
        line = linecache.getline(filename, lineno).strip()
        found.append((filename, lineno, frame.f_code.co_name, line))
    return found


def _student_frame(tb) -> tuple[str, int, str] | None:
    """The innermost traceback frame that belongs to the student, not to a library."""
    frames = _notebook_frames(tb)
    if not frames:
        return None
    filename, lineno, _, line = frames[-1]
    return filename, lineno, line


def _exception_text(exc: BaseException) -> str:
    """``"ValueError: what it says"``, even when the exception's ``str`` fails."""
    try:
        said = str(exc)
    except Exception:  # noqa: BLE001 - a student's exception class may be broken
        said = ""
    said = " ".join(said.split()) if "\n" not in said.strip() else said.strip()
    if len(said) > 300:
        said = said[:297] + "..."
    return f"{type(exc).__name__}: {said}".rstrip(": ")


def describe_exception(exc: BaseException) -> str:
    """One or two lines: the exception, and the line of student code that raised it."""
    text = _exception_text(exc)
    try:
        frames = [f for f in _notebook_frames(exc.__traceback__) if f[3]]
    except Exception:  # noqa: BLE001 - a traceback we cannot read: no line
        frames = []
    if len(frames) == 1:
        _, lineno, _, line = frames[0]
        text += f"\nraised by this line of your code (line {lineno}): {line}"
    elif frames:
        # the innermost frame may be a helper the lab gives, or another function of
        # yours: name it, and the line of the function checked that led to it
        _, lineno, func, line = frames[-1]
        _, first_no, first_func, first_line = frames[0]
        text += (
            f"\nraised in {func}(), line {lineno}: {line}"
            f"\nreached from {first_func}(), line {first_no}: {first_line}"
        )
    return text


# --------------------------------------------------------------------------- compare
def _fmt(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.6g}"
    return _safe_repr(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def _item_label(where: str, key: Any) -> str:
    """How a dict item is named: ``grads['W1']``, or the key itself.

    Checks of class exercises return dicts keyed by what they looked at (``"p.data"``,
    ``"number of train_step calls"``, ``"dW"``); such a key names the item on its own,
    as does every key of a dict that a case's ``run`` built (``where`` empty).
    """
    if isinstance(key, str) and (not where or not key.isidentifier()):
        return key if " " in key else f"`{key}`"
    words = re.fullmatch(r"`([A-Za-z_]\w*)( [^`]*)`", where)
    if words:  # "params after the update" -> "params['W1'] after the update"
        return f"`{words.group(1)}[{key!r}]`{words.group(2)}"
    return f"{where}[{key!r}]"


def compare(
    got: Any,
    expected: Any,
    where: str,
    rtol: float = RTOL,
    atol: float = ATOL,
    names: Sequence[str] = (),
    *,
    check_dtype: bool = True,
) -> Problem | None:
    """Compare one output with the reference's; ``None`` when they agree.

    Handles arrays, numbers, ``None``, strings, booleans, and dicts, tuples and lists
    of those (compared item by item, so a message can say ``grads['W1']``). ``names``
    labels the items of a tuple output, e.g. ``("dx", "dW", "db")``. Never raises:
    an object that cannot be compared (its ``__eq__`` or ``__array__`` raises) is a
    problem like any other.

    Args:
        got: the student's output.
        expected: the reference's output.
        where: how the output is named in the message, e.g. ``"the result"``.
        rtol: relative tolerance for floating-point values.
        atol: absolute tolerance for floating-point values.
        names: names of the items of a tuple or list output.
        check_dtype: whether a float64 result fails where the reference gives
            float32 (off when recognising mistakes).
    """
    try:
        # values first, everywhere in the output: a wrong value (or a more specific
        # key like "p.grad.dtype") says more than a float64 somewhere
        problem = _compare(got, expected, where, rtol, atol, names, False)
        if problem is None and check_dtype:
            problem = _compare(got, expected, where, rtol, atol, names, True)
        return problem
    except Exception as exc:  # noqa: BLE001 - the student's object may raise anything
        return Problem(
            f"{where} is {_describe(got)}, which could not be compared with the "
            f"expected result ({_exception_text(exc)})."
        )


def _compare(got, expected, where, rtol, atol, names, check_dtype) -> Problem | None:
    if isinstance(expected, dict):
        shown = where or "the result"
        if not isinstance(got, dict):
            return Problem(
                f"{shown} should be a dict with keys {sorted(map(str, expected))}, "
                f"but your code returned {_describe(got)}."
            )
        missing = [k for k in expected if k not in got]
        if missing:
            return Problem(f"{shown} is missing the key(s) {missing}.")
        for key in expected:
            problem = _compare(
                got[key],
                expected[key],
                _item_label(where, key),
                rtol,
                atol,
                (),
                check_dtype,
            )
            if problem:
                return problem
        return None
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return Problem(
                f"{where} should be a {type(expected).__name__} of {len(expected)} "
                f"items, but your code returned {_describe(got)}."
            )
        if len(got) != len(expected):
            return Problem(
                f"{where} should have {len(expected)} items, but has {len(got)}."
            )
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            label = f"`{names[i]}`" if i < len(names) else f"{where}[{i}]"
            problem = _compare(g, e, label, rtol, atol, (), check_dtype)
            if problem:
                return problem
        return None
    if expected is None:
        if got is not None:
            return Problem(
                f"{where} should be None (the function works in place), but your "
                f"code returned {_describe(got)}."
            )
        return None
    if isinstance(expected, (bool, np.bool_)):
        if not isinstance(got, (bool, np.bool_)) or bool(got) != bool(expected):
            return Problem(f"{where} should be {expected}, got {_safe_repr(got)}.")
        return None
    if isinstance(expected, str):
        if not isinstance(got, str) or got != expected:
            # a warning's text, in full (up to 300 characters, cut between words)
            said = _safe_repr(got, 300)
            return Problem(f"{where} should be {expected!r}, got {said}.")
        return None
    problem = _compare_arrays(got, expected, where, rtol, atol, check_dtype)
    if problem is not None and not problem.hint:
        problem.got, problem.expected = got, expected
    return problem


def _is_integral(x: Any) -> bool:
    """An int, or an integer array/scalar: compared exactly, not with a tolerance."""
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, (int, np.integer)):
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind in "iu"


def _compare_arrays(
    got: Any, expected: Any, where: str, rtol: float, atol: float, check_dtype: bool
) -> Problem | None:
    scalar = _is_number(expected) or (
        isinstance(expected, np.ndarray) and expected.ndim == 0
    )
    if got is None:
        return Problem(
            f"{where} is None: did you forget the `return` statement?",
        )
    if isinstance(got, np.ndarray) and type(got) is not np.ndarray:
        return Problem(
            f"{where} is a {_type_name(got)}, a special kind of array that behaves "
            "differently from a plain NumPy array (for example in products, or where "
            "values are masked); return a plain np.ndarray.",
        )
    if scalar:
        if isinstance(got, np.ndarray) and got.size == 1 and got.ndim > 0:
            return Problem(
                f"{where} should be a single number, but your code returned an array "
                f"of shape {got.shape}.",
                "a loss or a count is a scalar (a Python or NumPy number, 0-d), not "
                "an array holding one number: reduce over every axis, or take the "
                "number out of the array.",
            )
        if not _is_number(got) and not (isinstance(got, np.ndarray) and got.ndim == 0):
            return Problem(
                f"{where} should be a single number, but your code returned "
                f"{_describe(got)}.",
                "a loss is one number for the whole batch: average (np.mean) over "
                "the examples.",
            )
    elif not isinstance(got, np.ndarray):
        return Problem(
            f"{where} should be a NumPy array of shape {np.shape(expected)}, but your "
            f"code returned {_describe(got)}."
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
    if _is_integral(expected):  # a count or an index: exact
        if np.array_equal(got_arr, exp_arr):
            return None
        if got_arr.ndim == 0:
            return Problem(
                f"{where} is {_fmt(got)}, but it should be {_fmt(expected)}."
            )
        idx = tuple(int(i) for i in np.argwhere(got_arr != exp_arr)[0])
        return Problem(
            f"{where} has wrong values ({int(np.sum(got_arr != exp_arr))} of "
            f"{got_arr.size} entries differ). First at index {idx}: got "
            f"{_fmt(got_arr[idx])}, expected {_fmt(exp_arr[idx])}."
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
            f"{_fmt(exp_f[idx])}. Something overflowed, took the log of zero or "
            "divided by zero."
        )
    close = np.isclose(got_f, exp_f, rtol=rtol, atol=atol, equal_nan=True)
    if not np.all(close):
        err = np.where(close, 0.0, np.abs(got_f - exp_f))
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(err), err.shape))
        tolerance = f"(tolerance: rtol={rtol:g}, atol={atol:g})"
        if got_f.ndim == 0:
            return Problem(
                f"{where} is {_fmt(got_f[idx])}, but it should be "
                f"{_fmt(exp_f[idx])} {tolerance}."
            )
        n_bad = int(np.sum(~close))
        return Problem(
            f"{where} has wrong values ({n_bad} of {close.size} entries differ). "
            f"Worst at index {idx}: got {_fmt(got_f[idx])}, expected "
            f"{_fmt(exp_f[idx])} {tolerance}."
        )
    if check_dtype and _is_float32(expected) and _is_float64(got):
        return Problem(
            f"{where} has the right values but dtype float64; it should stay float32 "
            "like its inputs.",
            FLOAT64_HINT,
        )
    if check_dtype and _is_float32(expected) and _is_other_kind(got):
        return Problem(
            f"{where} has the right values but dtype {got.dtype}; it should be "
            "float32 like its inputs.",
            OTHER_DTYPE_HINT,
        )
    return None


def _is_other_kind(x: Any) -> bool:
    """A bool, integer or float16 array or NumPy scalar (not float32, not float64)."""
    return isinstance(x, (np.ndarray, np.generic)) and (
        x.dtype.kind in "biu" or x.dtype == np.float16
    )


def _is_float32(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.floating)) and x.dtype == np.float32


def _is_float64(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.floating)) and x.dtype == np.float64


def agrees(got: Any, other: Any, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Whether ``got`` matches ``other`` in values (used to recognise mistakes)."""
    try:
        return compare(got, other, "output", rtol, atol, check_dtype=False) is None
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
            "of the factors of the matrix product, and which one is transposed "
            "(write each shape next to it: the result has the shape of what it is "
            "the gradient of)."
        )
    if got_arr.ndim == exp_arr.ndim + 1 and got_arr.shape[1:] == exp_arr.shape:
        return (
            f"this has one row per example, shape {got_arr.shape}: a parameter's "
            "gradient is summed over the batch (over the rows)."
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
_REFERENCE_MARK = "__nn_reference_for__"


def _reference_for(student: Any) -> frozenset[str]:
    """The exercises whose reference ``student`` is (from ``check.reference``)."""
    try:
        own = vars(student)  # a class's own dict: a subclass of it is the student's
    except TypeError:
        return frozenset()
    try:
        mark = own.get(_REFERENCE_MARK, frozenset())
    except Exception:  # noqa: BLE001 - an object with a strange __dict__
        return frozenset()
    return mark if isinstance(mark, frozenset) else frozenset()


def used_reference(name: str, total: int = 0) -> CheckResult:
    """The result of a check run on the reference handed out by ``check.reference``."""
    return CheckResult(name, USED_REFERENCE, 0, total)


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
    hints_first: bool = False,
) -> CheckResult:
    """Compare ``student`` with ``reference`` on every case; report the first problem.

    Never raises (but in strict mode): an exception, a time-out after
    :data:`TIMEOUT_S` seconds or an interrupt in the student's code, and an output the
    comparison cannot make sense of, each become a failed result with one clear line.

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
        hints_first: ask ``hints`` even where the problem brings its own hint (a
            loss that is not a number, an array rebound), and put theirs first: an
            integration check names the piece that causes it.

    Returns:
        The :class:`CheckResult`; ``"used the reference"`` when ``student`` is what
        ``check.reference(name)`` handed out. In strict mode a result that did not
        pass raises :class:`CheckFailed` instead.
    """
    if name in _reference_for(student):
        return finish(used_reference(name), record)
    try:
        cases = list(cases)
    except Exception as exc:  # noqa: BLE001 - building the cases must not escape
        return finish(_internal_error(name, 0, exc), record)
    result = contained(
        name,
        len(cases),
        lambda: _run(
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
            hints_first,
        ),
    )
    return finish(result, record)


def contained(name: str, total: int, run: Callable[[], CheckResult]) -> CheckResult:
    """``run()`` under the time limit, its escapes turned into failed results.

    A timeout, an interrupt or an error of the check's own code (on something the
    student's code returned) becomes a one-line failed result; only strict mode's
    :class:`CheckFailed` goes through.
    """
    try:
        with time_limit():
            return run()
    except CheckFailed:
        raise
    except CheckTimeout as exc:
        return CheckResult(name, FAILED, 0, total, _timeout_message(exc.args[0]))
    except KeyboardInterrupt:
        return CheckResult(name, FAILED, 0, total, INTERRUPTED_MESSAGE)
    except Exception as exc:  # noqa: BLE001 - the check itself must never escape
        return _internal_error(name, total, exc)


def _internal_error(name: str, total: int, exc: BaseException) -> CheckResult:
    """A failure of the check's own code on what the student's code returned."""
    return CheckResult(
        name,
        FAILED,
        0,
        total,
        "The check stopped on something it could not handle in what your code "
        f"returned or did ({_exception_text(exc)}).",
        "make sure your code returns exactly what the docstring describes (types, "
        "shapes), then run the check again.",
    )


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
    hints_first=False,
):
    total = len(cases)
    if not callable(student):
        return CheckResult(
            name,
            FAILED,
            0,
            total,
            f"`{name}` should be a function (or class), but it is "
            f"{_type_name(student)}.",
            "pass the function itself, without calling it: check(f), not check(f()).",
        )
    for passed, case in enumerate(cases):
        expected = case.run_case(reference, arg_names).out
        try:
            run = case.run_case(student, arg_names)
        except NotImplementedError as exc:
            # the generated stubs raise NotImplementedError("<function name>")
            try:
                stub = str(exc).strip()
            except Exception:  # noqa: BLE001
                stub = ""
            return CheckResult(name, NOT_IMPLEMENTED, 0, total, stub)
        except CheckTimeout as exc:
            return CheckResult(
                name,
                FAILED,
                passed,
                total,
                f"Case '{case.name}': your code {_timeout_message(exc.args[0])}",
            )
        except NotInPlace as exc:
            return CheckResult(
                name,
                FAILED,
                passed,
                total,
                f"Case '{case.name}': {_exception_text(exc).partition(': ')[2]}",
                _joined(getattr(exc, "nn_hint", None), IN_PLACE_HINT),
            )
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
        # a dict that the case's run built is named by its keys alone
        built = case.run is not None and isinstance(expected, dict)
        where = "" if built else "the result"
        problem = compare(run.out, expected, where, rtol, atol, output_names)
        if problem is None:
            problem = _in_place_problem(case, run, arg_names)
        if problem is None:
            problem = _mutation_problem(case, run.args, run.kwargs, arg_names)
        if problem is None:
            continue
        if hints_first and problem.hint:
            first = _diagnose(run.out, expected, case, (), hints, Problem(""))
            hint = _joined(first, problem.hint)
        else:
            hint = problem.hint or _diagnose(
                run.out, expected, case, mistakes, hints, problem
            )
        return CheckResult(
            name, FAILED, passed, total, f"Case '{case.name}': {problem.message}", hint
        )
    return CheckResult(name, PASSED, total, total)


def _joined(first: Any, then: str) -> str:
    """``first`` (a piece named by an integration check), then ``then``."""
    if not isinstance(first, str) or not first:
        return then
    return f"{first.rstrip()} {then[:1].upper()}{then[1:]}"


def _in_place_problem(case: Case, run: Execution, arg_names) -> Problem | None:
    """Whether an input defined as updated in place had an array rebound."""
    for i, arg in enumerate(run.args):
        label = _arg_name(i, arg_names)
        if label in run.refs:
            path = rebound(run.refs[label], arg)
            if path is not None:
                return _rebound_problem(label + path)
    for key, value in run.kwargs.items():
        if key in run.refs:
            path = rebound(run.refs[key], value)
            if path is not None:
                return _rebound_problem(key + path)
    return None


def _rebound_problem(what: str) -> Problem:
    return Problem(
        f"`{what}` is a new array object after the call: the caller's array was "
        "replaced instead of being updated in place.",
        IN_PLACE_HINT,
    )


def _mutation_problem(case, args_after, kwargs_after, arg_names) -> Problem | None:
    allowed = tuple(case.may_modify) + tuple(case.in_place)
    for i, (before, after) in enumerate(zip(case.args, args_after, strict=True)):
        if _named(i, arg_names, allowed):
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
        if key in allowed:
            continue
        if not _unchanged(before, kwargs_after.get(key)):
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
        try:
            return generic_hint(problem.got, problem.expected, _batch_size(case))
        except Exception:  # noqa: BLE001 - no generic hint for an odd object
            return ""
    return ""


def _exception_hint(exc: BaseException) -> str:
    attached = getattr(exc, "nn_hint", None)  # a check's run may attach one
    if isinstance(attached, str) and attached:
        return attached
    text = _exception_text(exc)
    if isinstance(exc, RecursionError):
        return (
            "a function calls itself without end. Inside __setattr__, both "
            "setattr(self, ...) and self.name = ... call __setattr__ again: store "
            "the attribute through the base class's __setattr__ there."
        )
    if isinstance(exc, ValueError) and "read-only" in text:
        return (
            "that array is read-only: it is what forward saved (ctx.saved_tensors) "
            "or an input that must stay as it is. Backward must not change what "
            "forward saved, since a second backward reads it again: compute into a "
            "new array (grad = probs.copy(), or out = grad_output * saved)."
        )
    if isinstance(exc, ValueError) and "broadcast" in text:
        return (
            "two arrays' shapes don't broadcast: write the shape of each operand "
            "next to it. A sum or max over each row, (N, C) -> (N,), needs "
            "keepdims=True to broadcast back against (N, C); integer labels y, "
            "shape (N,), are not one-hot rows: use them as indices, not in "
            "arithmetic with an (N, C) array."
        )
    if isinstance(exc, ValueError) and "not have enough dimensions" in text:
        return (
            "one operand of a matrix product has no dimensions: a single number (a "
            "loss value where a gradient is expected? backward takes the gradient "
            "with respect to the output, an array shaped like the output), or an "
            "object that is not an array, such as a Parameter (use its array, "
            "p.data)."
        )
    if isinstance(exc, ValueError) and ("matmul" in text or "aligned" in text):
        return (
            "the shapes of a matrix product don't fit: write the shape of every "
            "array next to it, e.g. X is (N, D) and W1 is (D, H), so X @ W1 is "
            "(N, H)."
        )
    if isinstance(exc, TypeError) and "Parameter" in text:
        return (
            "a Parameter is not an array: arithmetic and matrix products need its "
            "values, p.data (and its gradient is p.grad)."
        )
    if isinstance(exc, TypeError) and "as a data type" in text:
        return (
            "a shape goes in as one tuple: np.zeros((rows, cols)), not "
            "np.zeros(rows, cols) (the second argument is the dtype)."
        )
    if isinstance(exc, (KeyError, IndexError)):
        return "check the names and indices you use against the docstring."
    if isinstance(exc, NameError):
        name = getattr(exc, "name", None) or "this name"
        return (
            f"{name} is not defined where this line runs. A variable of another "
            "function (of forward, say) is not visible here: take it from what was "
            "saved for later (the cache, an attribute of self). If it is defined in "
            "a cell above, run that cell (Run → Run All Above Selected Cell)."
        )
    if isinstance(exc, AttributeError) and "has no attribute" in text:
        return (
            "an attribute is read before anything set it: a value that an earlier "
            "call (forward, __init__) must save for a later one (backward, step) is "
            "missing, or saved under another name."
        )
    return ""


# --------------------------------------------------------------------------- summary
class Lab:
    """The ordered exercises of one lab, the latest result of each, and lab helpers.

    Args:
        title: e.g. ``"Lab 1: a two-layer network by hand"``.
        exercises: the exercise names, in the lab's order; each has a check function
            of that name in the lab module, and a check cell in the lab.
        references: exercise name -> reference implementation, for
            :meth:`reference`. Exercises that share one reference object (the methods
            of one class) are handed out, and marked as used, together.
        module: the lab module's ``__name__``. The module then guards its check
            functions (:meth:`guard`) and offers ``reference``, ``ready`` and
            ``results_as_dict`` as ``check.<helper>``.
    """

    def __init__(
        self,
        title: str,
        exercises: Sequence[str],
        references: dict[str, Any] | None = None,
        module: str | None = None,
    ):
        self.title = title
        self.exercises = list(exercises)
        self.references = dict(references or {})
        self.results: dict[str, CheckResult] = {}
        unknown = set(self.references) - set(self.exercises)
        if unknown:
            raise ValueError(f"references for unknown exercises: {sorted(unknown)}")
        if module is not None:
            mod = sys.modules[module]
            if not isinstance(mod, _LabModule):
                mod.__class__ = _LabModule

    def record(self, result: CheckResult) -> None:
        """Keep ``result`` as the latest of its exercise."""
        self.results[result.name] = result

    def status(self, name: str) -> str:
        """Where exercise ``name`` stands: passed, failed, ..., or not run."""
        result = self.results.get(name)
        return NOT_RUN if result is None else result.status

    # ------------------------------------------------------------------ helpers
    def reference(self, name: str) -> Any:
        """The reference implementation of exercise ``name``, for a stuck student.

        ``relu = check.reference("relu")`` replaces the student's ``relu`` for the
        rest of the lab. It prints a one-line note, and the summary lists the exercise
        (and any other exercise with the same reference, like the other methods of the
        same class) as "used the reference", never as passed; a check run on it
        reports the same. Checking one's own implementation later replaces that.

        Args:
            name: the exercise, as in the lab's check cells.

        Returns:
            A thin marked wrapper of the reference: a function that calls it, or a
            subclass of it with the same name.

        Raises:
            ValueError: ``name`` has no reference (the message lists those that do).
        """
        if name not in self.references:
            known = ", ".join(self.references) or "none"
            raise ValueError(
                f"no reference implementation for {name!r}; the exercises that have "
                f"one are: {known}."
            )
        impl = self.references[name]
        names = frozenset(ex for ex, other in self.references.items() if other is impl)
        wrapper = _marked(impl, names)
        ordered = [ex for ex in self.exercises if ex in names]
        for ex in ordered:
            self.record(used_reference(ex))
        _say(
            f"📎 using the reference implementation for {', '.join(ordered)}: the "
            "summary will list it as used the reference, not passed."
        )
        return wrapper

    def ready(self, *names: str) -> bool:
        """Whether the exercises a cell needs are done; if not, say so in one line.

        For a demo or training cell: ``if check.ready("forward", "backward"):`` runs
        the cell's body once those exercises passed their checks or use the
        reference; otherwise prints ``⏳ waiting for: forward (not implemented yet),
        backward (not checked yet); skipping this cell.`` so that Run All goes on to
        the summary.

        Args:
            names: exercise names of this lab.

        Returns:
            ``True`` when every one passed or uses the reference.
        """
        unknown = [n for n in names if n not in self.exercises]
        if unknown:
            raise ValueError(f"not exercises of this lab: {unknown}")
        waiting = [n for n in names if self.status(n) not in (PASSED, USED_REFERENCE)]
        if not waiting:
            return True
        parts = []
        for n in waiting:
            status = self.status(n)
            why = "not checked yet" if status == NOT_RUN else status
            parts.append(f"{n} ({why})")
        _say(f"⏳ waiting for: {', '.join(parts)}; skipping this cell.")
        return False

    def results_as_dict(self) -> dict[str, Any]:
        """The lab's results as plain data, ready for ``json.dumps``.

        Returns:
            ``{"title": str, "passed": int, "total": int, "all_passed": bool,
            "exercises": [{"name", "status", "cases_passed", "cases_total",
            "message", "hint"}, ...]}``, one entry per exercise in the lab's order.
            ``status`` is one of ``"passed"``, ``"failed"``, ``"not implemented
            yet"``, ``"used the reference"`` and ``"not run"`` (never checked); the
            message and hint are plain text. Only ``"passed"`` counts as passed.
        """
        entries = []
        for ex in self.exercises:
            result = self.results.get(ex)
            if result is None:  # (a result that did not pass is falsy)
                result = CheckResult(ex, NOT_RUN)
            entries.append(result.as_dict())
        passed = sum(e["status"] == PASSED for e in entries)
        return {
            "title": self.title,
            "passed": passed,
            "total": len(entries),
            "all_passed": passed == len(entries),
            "exercises": entries,
        }

    def summary(self) -> Summary:
        """A table of the lab's exercises and where each stands."""
        rows = [(ex, self.status(ex)) for ex in self.exercises]
        summary = Summary(self.title, rows)
        if strict_mode() and not summary.all_passed:
            raise CheckFailed(summary.text())
        return summary

    # ------------------------------------------------------------------ guard
    def guard(self, name: str, check: Callable[..., CheckResult]) -> Callable:
        """``check`` made safe: it never raises (but in strict mode), has a time limit,
        and reports "used the reference" on what :meth:`reference` handed out.

        The lab module applies it to every exercise's check function by itself (see
        ``module`` in :class:`Lab`); custom checks that do not go through
        :func:`run_check` are protected by it too.
        """

        @functools.wraps(check)
        def guarded(student=None, *args, **kwargs):
            marks = _reference_for(student)
            # an integration check (no reference of its own) given a reference piece
            # checks the course's code, not the student's
            if name in marks or (marks and name not in self.references):
                return finish(used_reference(name), self.record)
            return finish(
                contained(name, 0, lambda: check(student, *args, **kwargs)),
                self.record,
            )

        guarded.__nn_guarded__ = True
        return guarded


def _marked(impl: Any, names: frozenset[str]) -> Any:
    """A wrapper of ``impl`` that checks recognise as the reference for ``names``."""
    if isinstance(impl, type):
        return type(
            impl.__name__,
            (impl,),
            {
                _REFERENCE_MARK: names,
                "__module__": impl.__module__,
                "__qualname__": impl.__qualname__,
                "__doc__": impl.__doc__,
            },
        )

    @functools.wraps(impl)
    def reference(*args, **kwargs):
        return impl(*args, **kwargs)

    setattr(reference, _REFERENCE_MARK, names)
    return reference


_LAB_HELPERS = ("reference", "ready", "results_as_dict")


class _LabModule(types.ModuleType):
    """The type of a lab module (``Lab(..., module=__name__)`` sets it).

    Attribute access from outside (``check.relu``) returns each exercise's check
    function guarded by :meth:`Lab.guard`, and ``check.reference``, ``check.ready``
    and ``check.results_as_dict`` are the lab's, unless the module defines its own.
    Code inside the module sees its plain functions.
    """

    def __getattribute__(self, attr: str) -> Any:
        value = super().__getattribute__(attr)
        if attr.startswith("__"):
            return value
        lab = super().__getattribute__("__dict__").get("LAB")
        if (
            isinstance(lab, Lab)
            and attr in lab.exercises
            and isinstance(value, types.FunctionType)
            and not getattr(value, "__nn_guarded__", False)
        ):
            return lab.guard(attr, value)
        return value

    def __getattr__(self, attr: str) -> Any:
        lab = self.__dict__.get("LAB")
        if isinstance(lab, Lab) and attr in _LAB_HELPERS:
            return getattr(lab, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")


@dataclass
class Summary:
    """The table a lab's last cell shows."""

    title: str
    rows: list[tuple[str, str]]

    @property
    def all_passed(self) -> bool:
        return all(status == PASSED for _, status in self.rows)

    def _head(self) -> str:
        done = sum(status == PASSED for _, status in self.rows)
        head = f"{self.title}: {done} of {len(self.rows)} exercises passed"
        used = sum(status == USED_REFERENCE for _, status in self.rows)
        if used:
            head += f", {used} used the reference"
        return head

    def text(self) -> str:
        width = max((len(ex) for ex, _ in self.rows), default=0)
        lines = [self._head()]
        lines += [
            f"  {_ICONS.get(status, '?')} {ex:<{width}}  {status}"
            for ex, status in self.rows
        ]
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{_ICONS.get(s, '?')}</td><td><code>{html.escape(ex)}</code></td>"
            f"<td>{html.escape(s)}</td></tr>"
            for ex, s in self.rows
        )
        return f"<p><b>{html.escape(self._head())}</b></p><table>{rows}</table>"


# ------------------------------------------------- a second backward, same forward
SECOND_DX = "dx of a second backward on the same forward"
_SECOND_RAISED = (
    "the first backward ran, a second one on the same forward raised: backward "
    "changed what forward cached (the cache transposed, rebound or edited in "
    "place). Compute into new arrays and leave the cache as forward left it."
)


def backward_again(layer: Any, dout: Any) -> Any:
    """A second backward on the same forward; an error in it says so in its hint.

    A layer whose backward reads a cache is run backward twice (the family rule
    "state read twice"): the second dx, kept under :data:`SECOND_DX`, must agree.
    """
    try:
        return layer.backward(dout)
    except Exception as exc:
        exc.nn_hint = _SECOND_RAISED
        raise


def second_dx_hint(first: str, edits: str) -> Callable[[Any, Any, Any], str]:
    """A diagnoser: the first backward is right (its dx under ``first``), a second
    one on the same forward is not, so backward edited what forward cached.

    Args:
        first: the output's key of the first backward's dx.
        edits: examples of such an edit, for the hint (``"an in-place *= on the
            cached mask"``).
    """

    def diagnose(got: Any, expected: Any, case: Any) -> str:
        if (
            isinstance(got, dict)
            and SECOND_DX in got
            and agrees(got.get(first), expected[first])
            and not agrees(got.get(SECOND_DX), expected[SECOND_DX])
        ):
            return (
                "a second backward after the same forward gives another dx: backward "
                f"changed what forward cached ({edits}, say, or the cache rebound to "
                "a product). Compute dx into a new array and leave the cache as "
                "forward left it."
            )
        return ""

    return diagnose
