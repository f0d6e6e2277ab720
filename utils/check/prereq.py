"""A failure caused by an earlier exercise says so, and names that exercise first.

When ``backward`` fails its check and it calls ``relu_grad``, whose own check has
already failed, the student should fix ``relu_grad`` first: the backward check's
message then begins with that, and keeps what it found below.

Which pieces a check lists follows what its run really calls. A check that runs the
exercise among the course's other pieces (lab 4's ``linear`` on the course's
operations, the ``train_epoch`` checks on the course's model and optimizer) lists
the pieces that the student's code may name itself (``MatMul.apply``, an ``SGD`` it
builds): only those can be the cause. An integration check (``training``) runs the
notebook's pieces together and fails while any of them has failed, even if its
cases agree (``even_if_passed``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from utils.check.core import FAILED, PASSED, CheckFailed, CheckResult, Lab, finish
from utils.check.integration import find_global

Piece = str | tuple[str, str | None]
"""An exercise that a checked one may use: its name when the notebook's global has
the same name (``"relu_grad"``); ``(exercise, global)`` when not (``("module",
"Module")``: called, or a base class); ``(exercise, None)`` for another exercise of
the same class (``("network_forward", None)`` for ``Network.train_step``)."""


def _uses(student: Any, piece: Piece) -> tuple[str, bool]:
    """The piece's exercise, and whether ``student`` uses it."""
    if isinstance(piece, str):
        return piece, _calls(student, piece)
    exercise, name = piece
    if name is None:
        return exercise, True
    base = find_global(student, name, None)
    inherits = base is not None and base in getattr(student, "__mro__", ())[1:]
    return exercise, inherits or _calls(student, name)


def _calls(student: Any, name: str) -> bool:
    """Whether the code of ``student`` (a function, or a class's methods) names
    ``name`` and finds it in its globals (the notebook's)."""
    codes = []
    code = getattr(student, "__code__", None)
    if code is not None:
        codes.append(code)
    for klass in getattr(student, "__mro__", ()):
        for attr in vars(klass).values():
            attr = getattr(attr, "__func__", attr)  # a staticmethod's function
            code = getattr(attr, "__code__", None)
            if code is not None:
                codes.append(code)
    named = any(name in code.co_names for code in codes)
    return named and find_global(student, name, None) is not None


def _what_failed(result: CheckResult) -> str:
    """The first line of a failed result's message, without its case's name."""
    first = (result.message or "").splitlines()[0] if result.message else ""
    if first.startswith("Case '") and "': " in first:
        first = first.split("': ", 1)[1]
    return first.rstrip(".")


def blame_earlier(
    lab: Lab,
    name: str,
    student: Any,
    pieces: Sequence[Piece],
    run: Callable[[Callable[[CheckResult], None]], CheckResult],
    even_if_passed: bool = False,
) -> CheckResult:
    """Run a check (``run(record)``) and, when it fails while one of ``pieces`` that
    ``student`` calls has failed its own check, name that piece first.

    With ``even_if_passed`` (an integration check such as lab 1's ``training``), a
    failed piece fails the check even when its cases agree: the piece would make it
    fail, or pass by luck, and a passing check never sits beside a failing piece it
    uses.

    Args:
        lab: the lab whose results say which pieces failed.
        name: the exercise checked (for the message).
        student: the student's function or class.
        pieces: the exercises that ``student`` may use, in the lab's order (see
            :data:`Piece`).
        run: runs the check, recording its result with the function it is given.
        even_if_passed: turn a passing result into a failure too.

    Returns:
        The result, recorded in ``lab`` (and raised in strict mode if it failed).
    """
    got: list[CheckResult] = []
    try:
        result = run(got.append)
    except CheckFailed:  # strict mode: the result was recorded before the raise
        result = got[-1] if got else lab.results[name]
    failed = []
    for piece in pieces:
        exercise, used = _uses(student, piece)
        if used and lab.status(exercise) == FAILED:
            failed.append(exercise)
    passed = even_if_passed and result.status == PASSED
    if failed and (result.status == FAILED or passed):
        first = failed[0]
        why = _what_failed(lab.results[first])
        said = f" ({why})" if why else ""
        message = (
            f"{first} has not passed its own check{said}: {name} uses it, so fix "
            f"{first} first, then run this check again."
        )
        hint = f"fix {first} first (its check cell says what is wrong)"
        result = CheckResult(
            result.name,
            FAILED,
            0 if passed else result.cases_passed,
            result.cases_total,
            message if passed else f"{message}\n{result.message}",
            f"{hint}."
            if passed
            else f"{hint}; if {name} still fails afterwards: "
            + (result.hint or "see the message above."),
        )
    return finish(result, lab.record)


def blames(lab: Lab, *pieces: Piece) -> Callable[[Callable], Callable]:
    """A check function decorated so that it names a failed piece first
    (:func:`blame_earlier`); the check records its result as usual.

    ``@blames(LAB, "unbroadcast")`` above ``def add(student)``: when ``add`` fails
    while the ``unbroadcast`` it calls has failed, the message says so first.
    """

    def decorate(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
        @functools.wraps(check)
        def checked(student: Any, *args: Any, **kwargs: Any) -> CheckResult:
            return blame_earlier(
                lab,
                check.__name__,
                student,
                pieces,
                lambda record: check(student, *args, **kwargs),
            )

        return checked

    return decorate
