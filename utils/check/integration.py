"""Integration checks: the student's pieces, run together for several steps.

Each exercise check calls the student's code on fresh objects, once per case. A
mistake that only shows when state is carried from one call to the next passes them
all: gradients added to the previous batch's where they should replace them, an
optimizer's state keyed by shape (shared by two parameters of one shape), a loss that
is an array of one number, float64 creeping into the parameters, an update that
rebinds the caller's arrays instead of changing them. The training cells below the
exercises would then fail, far from the cause.

An integration check trains a small model for a few steps (several batches, the last
one smaller, the same batches again) twice: with the student's pieces and with the
reference's, on the same data, the same initial weights and the same batches, and
compares every step's loss and the parameters after every step. When they differ, it
puts the student's pieces one at a time, in the order of the lab, into an otherwise
reference run: the first piece that makes that run differ on its own is the one the
hint names (:func:`first_divergent_piece`).

A lab's check builds on :func:`utils.check.core.run_check`: the implementation given
to a case's ``run`` is either the student's entry point (a function or class, whose
pieces a ``discover`` function finds) or an already resolved ``{piece: impl}`` dict,
which is how the models of mistakes and the mixed runs are written.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from utils.check.core import Case, NotInPlace, agrees

Pieces = dict[str, Any]


def find_global(obj: Any, name: str, default: Any, kind: type | None = None) -> Any:
    """``name`` as the code of ``obj`` sees it (the notebook's name, for a student).

    ``obj`` is a function (its globals are searched) or a class (the globals of its
    methods, along the MRO). ``kind`` (e.g. ``type``) restricts what is accepted; by
    default anything callable.
    """
    spaces = []
    glob = getattr(obj, "__globals__", None)
    if isinstance(glob, dict):
        spaces.append(glob)
    for klass in getattr(obj, "__mro__", ()):
        for attr in vars(klass).values():
            attr = getattr(attr, "__func__", attr)  # a staticmethod's function
            glob = getattr(attr, "__globals__", None)
            if isinstance(glob, dict):
                spaces.append(glob)
    for space in spaces:
        value = space.get(name)
        if value is None:
            continue
        if (kind is not None and isinstance(value, kind)) or (
            kind is None and callable(value)
        ):
            return value
    return default


def batch_slices(sizes: Sequence[int]) -> list[slice]:
    """Consecutive row slices of the given sizes: ``(4, 3)`` -> rows 0:4, then 4:7."""
    starts = np.cumsum((0, *sizes))
    return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]


def copy_params(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A snapshot of ``{name: array}`` (later steps change the arrays in place)."""
    return {name: np.array(value, copy=True) for name, value in params.items()}


def first_divergent_piece(
    order: Sequence[str],
    student: Pieces,
    reference: Pieces,
    case: Case,
    run: Callable[..., Any],
    expected: Any,
) -> tuple[str, str] | None:
    """The first of the student's pieces that, alone among reference pieces, diverges.

    Args:
        order: the pieces' names, in the order of the lab.
        student: the student's pieces.
        reference: the reference's pieces, same names.
        case: the case (its arguments are copied for each run).
        run: ``run(pieces, *case.args, **case.kwargs)``: the trajectory.
        expected: the reference's trajectory.

    Returns:
        ``(name, how)``: the piece and, in words, how the mixed run went wrong; or
        ``None`` when no piece diverges on its own (then it is how they interact).
    """
    for name in order:
        if student.get(name) is None or student[name] is reference[name]:
            continue
        mixed = {**reference, name: student[name]}
        args = copy.deepcopy(case.args)
        kwargs = copy.deepcopy(case.kwargs)
        try:
            with np.errstate(all="ignore"):
                got = run(mixed, *args, **kwargs)
        except NotInPlace:
            return name, "it replaced an array instead of updating it in place"
        except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
            return name, f"it raised {type(exc).__name__}: {str(exc).strip()}"
        if not agrees(got, expected):
            return name, "the losses or the parameters differ from the reference's"
    return None


def _piece_hint(found: tuple[str, str] | None, advice: Mapping[str, str]) -> str:
    if found is None:
        return (
            "each of your pieces, run alone among the reference's, gives the "
            "reference's results, but together they do not: look at what one "
            "piece hands to the next (shapes, dtypes, arrays shared or changed "
            "in place)."
        )
    name, how = found
    return (
        f"{name} is the first piece that diverges when run alone among the "
        f"reference's pieces ({how}). {advice.get(name, '')}"
    ).strip()


def explain_errors(
    run: Callable[..., Any],
    student: Any,
    order: Sequence[str],
    discover: Callable[[Any], Pieces],
    reference: Any,
    advice: Mapping[str, str],
) -> Callable[..., Any]:
    """``run``, which, when the student's pieces raise together, attaches to the
    exception (``nn_hint``, which the check core shows) the piece that raises or
    diverges alone among the reference's."""

    def wrapped(impl: Any, *args: Any, **kwargs: Any) -> Any:
        if impl is not student:
            return run(impl, *args, **kwargs)
        saved = copy.deepcopy((args, kwargs))
        try:
            return run(impl, *args, **kwargs)
        except NotImplementedError:
            raise
        except Exception as exc:
            case = Case("", saved[0], saved[1])
            try:
                args2, kwargs2 = copy.deepcopy(saved)
                expected = run(discover(reference), *args2, **kwargs2)
                found = first_divergent_piece(
                    order, discover(student), discover(reference), case, run, expected
                )
                exc.nn_hint = _piece_hint(found, advice)
            except Exception:  # noqa: BLE001, S110 - no diagnosis: the generic hint
                pass
            raise

    return wrapped


def diverged_hint(
    order: Sequence[str],
    discover: Callable[[Any], Pieces],
    student: Any,
    reference: Any,
    run: Callable[..., Any],
    advice: Mapping[str, str],
) -> Callable[[Any, Any, Case], str]:
    """A diagnoser for :func:`~utils.check.core.run_check`: names the first piece
    that diverges on its own, with ``advice[piece]``."""

    def hint(got: Any, expected: Any, case: Case) -> str:
        found = first_divergent_piece(
            order, discover(student), discover(reference), case, run, expected
        )
        return _piece_hint(found, advice)

    return hint
