"""A check never raises, whatever the student's code returns or raises.

Every check of every lab (discovered from ``utils/check/lab*.py`` and their
``LAB.exercises``, so a new lab is covered without editing this file) is fed
implementations that return odd objects, as a function and as a class whose every
method returns them, and implementations that raise odd exceptions. Each time the
check must come back with a failed result and a message, and take well under a second
of CPU time (CPU, not wall-clock, so that other processes on the machine do not count).
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import utils.check as check_pkg
from utils.check import core

LAB_MODULES = [
    importlib.import_module(f"utils.check.{m.name}")
    for m in sorted(pkgutil.iter_modules(check_pkg.__path__), key=lambda m: m.name)
    if m.name.startswith("lab")
]
CPU_LIMIT_S = 1.0


class RaisesOnEverything:
    """An object whose ``__array__``, ``__eq__``, ``__len__``, ``__iter__``,
    ``__repr__`` and ``__float__`` all raise."""

    def _boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    __array__ = __eq__ = __ne__ = __len__ = __iter__ = __repr__ = _boom
    __float__ = __bool__ = __getitem__ = __lt__ = __gt__ = _boom
    __hash__ = None


class RaisesOnEq:
    def __eq__(self, other):
        raise ValueError("cannot compare")

    __hash__ = None


class RaisesOnLen(list):
    def __len__(self):
        raise TypeError("no length")


class ArraySubclass(np.ndarray):
    """A student's own subclass of ndarray."""


class BadMessage(Exception):
    def __str__(self):
        raise RuntimeError("a message that cannot be printed")


def _generator():
    yield np.zeros(3, np.float32)


PAYLOADS: dict[str, Callable[[], Any]] = {
    "an object that raises on everything": RaisesOnEverything,
    "an object whose __eq__ raises": RaisesOnEq,
    "a list whose __len__ raises": lambda: RaisesOnLen([1.0]),
    "a generator": _generator,
    "a masked array": lambda: np.ma.masked_array(np.zeros((3, 3)), mask=True),
    "an np.matrix": lambda: np.matrix(np.zeros((3, 3), np.float32)),
    "a huge array": lambda: np.zeros((1500, 1500), np.float32),
    "a subclass of ndarray": lambda: np.zeros((3, 3), np.float32).view(ArraySubclass),
    "a list of arrays": lambda: [np.zeros(3, np.float32), np.ones(2, np.float32)],
    "a string": lambda: "0.5",
    "a dict": lambda: {"W": np.zeros(3, np.float32)},
    "a 0-d object array": lambda: np.array(None, dtype=object),
    "None": lambda: None,
    "NaN": lambda: float("nan"),
    "a tuple of odd things": lambda: (RaisesOnEverything(), _generator(), "x"),
}


def returning(payload: Callable[[], Any]) -> Callable:
    """A function that returns the odd object."""

    def impl(*args, **kwargs):
        return payload()

    return impl


def class_returning(payload: Callable[[], Any]) -> type:
    """A class that takes any arguments and whose every method returns the object."""

    class Impl:
        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return lambda *args, **kwargs: payload()

        def __call__(self, *args, **kwargs):
            return payload()

    return Impl


def raising(exc: BaseException) -> Callable:
    def impl(*args, **kwargs):
        raise exc

    return impl


def _implementations():
    for what, payload in PAYLOADS.items():
        yield f"a function returning {what}", returning(payload)
        yield f"a class whose methods return {what}", class_returning(payload)
    yield "a function raising an exception whose message fails", raising(BadMessage())
    yield "a function raising KeyboardInterrupt", raising(KeyboardInterrupt())
    yield "a function raising a RecursionError", raising(RecursionError("deep"))
    yield "not a function: a number", 42
    yield "not a function: None", None


IMPLEMENTATIONS = list(_implementations())


def _checks():
    for mod in LAB_MODULES:
        lab = mod.__name__.rsplit(".", 1)[1]
        for exercise in mod.LAB.exercises:
            yield pytest.param(mod, exercise, id=f"{lab}-{exercise}")


def test_every_lab_module_is_found():
    names = [m.__name__.rsplit(".", 1)[1] for m in LAB_MODULES]
    assert {"lab1", "lab2", "lab3"} <= set(names), names


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize(("mod", "exercise"), list(_checks()))
def test_check_never_raises_and_is_quick(mod, exercise, monkeypatch):
    monkeypatch.delenv("NN_CHECK_STRICT", raising=False)
    monkeypatch.setattr(mod.LAB, "results", {})
    check = getattr(mod, exercise)
    for what, impl in IMPLEMENTATIONS:
        start = time.process_time()
        try:
            result = check(impl)
        except BaseException as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{exercise} raised on {what}: {core._exception_text(exc)}")
        cpu = time.process_time() - start
        assert isinstance(result, core.CheckResult), f"{exercise}, {what}: {result!r}"
        assert result.status == core.FAILED, f"{exercise}, {what}:\n{result.text()}"
        assert result.message.strip(), f"{exercise}, {what}: no message"
        text = result.text()
        assert "Traceback" not in text, f"{exercise}, {what}:\n{text}"
        assert len(text.splitlines()) <= 8, f"{exercise}, {what}: too long\n{text}"
        assert cpu < CPU_LIMIT_S, f"{exercise} took {cpu:.2f} s of CPU on {what}"
        assert mod.LAB.status(exercise) == core.FAILED  # and the summary knows


def test_interrupt_inside_a_check_is_one_line(monkeypatch):
    monkeypatch.delenv("NN_CHECK_STRICT", raising=False)
    mod = LAB_MODULES[0]
    exercise = mod.LAB.exercises[0]
    result = getattr(mod, exercise)(raising(KeyboardInterrupt()))
    assert result.status == core.FAILED and "interrupted" in result.message
    assert len(result.text().splitlines()) == 2


@pytest.mark.parametrize("mod", LAB_MODULES, ids=lambda m: m.__name__)
def test_an_infinite_loop_is_stopped_in_every_lab(mod, monkeypatch):
    """The first exercise of each lab, given a function and a class that never end."""
    monkeypatch.delenv("NN_CHECK_STRICT", raising=False)
    monkeypatch.setattr(core, "TIMEOUT_S", 0.5)

    def forever(*args, **kwargs):
        while True:
            pass

    class Forever:
        def __init__(self, *args, **kwargs):
            forever()

    exercise = mod.LAB.exercises[0]
    for impl in (forever, Forever):
        start = time.perf_counter()
        result = getattr(mod, exercise)(impl)
        assert time.perf_counter() - start < 5
        assert result.status == core.FAILED
        assert "did not finish in 0.5 s: is there a loop that never ends?" in (
            result.message
        ), result.text()


@pytest.mark.parametrize(("mod", "exercise"), list(_checks()))
def test_check_of_the_reference_is_well_under_a_second(mod, exercise, monkeypatch):
    """A right answer goes through every case: the slowest path of a check."""
    monkeypatch.delenv("NN_CHECK_STRICT", raising=False)
    monkeypatch.setattr(mod.LAB, "results", {})
    if exercise not in mod.LAB.references:
        pytest.skip(f"{exercise} has no reference of its own (an integration check)")
    start = time.process_time()
    result = getattr(mod, exercise)(mod.LAB.references[exercise])
    cpu = time.process_time() - start
    assert result.passed, result.text()
    assert cpu < CPU_LIMIT_S / 2, f"{exercise} took {cpu:.2f} s of CPU"
