"""Every check accepts the reference and rejects every catalogued wrong implementation
with a matching hint: a check that cannot fail is a defect."""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter

import pytest

import tests.catalogue as catalogue_pkg
from utils.check.core import FAILED, PASSED

MODULES = [
    importlib.import_module(f"tests.catalogue.{name}")
    for name in sorted(m.name for m in pkgutil.iter_modules(catalogue_pkg.__path__))
    if name.startswith("lab")
]


def _exercises():
    for mod in MODULES:
        for ex in mod.LAB.LAB.exercises:
            yield pytest.param(mod, ex, id=f"{mod.__name__.rsplit('.', 1)[1]}-{ex}")


def _wrongs():
    for mod in MODULES:
        lab = mod.__name__.rsplit(".", 1)[1]
        for i, wrong in enumerate(mod.WRONG):
            yield pytest.param(mod, wrong, id=f"{lab}-{wrong.exercise}-{i}-{wrong.why}")


def test_catalogues_exist():
    assert MODULES, "no catalogue modules found"


@pytest.mark.parametrize(("mod", "exercise"), list(_exercises()))
def test_reference_passes(mod, exercise):
    check = getattr(mod.LAB, exercise)
    result = check(mod.REFERENCE_IMPLS[exercise])
    assert result.status == PASSED, result.text()


@pytest.mark.parametrize(("mod", "exercise"), list(_exercises()))
def test_at_least_three_wrong_per_exercise(mod, exercise):
    counts = Counter(w.exercise for w in mod.WRONG)
    assert counts[exercise] >= 3, f"{exercise}: only {counts[exercise]} wrong impls"


@pytest.mark.parametrize(("mod", "wrong"), list(_wrongs()))
def test_wrong_is_rejected_with_matching_hint(mod, wrong):
    check = getattr(mod.LAB, wrong.exercise)
    result = check(wrong.impl)
    assert result.status == FAILED, f"{wrong.why} was accepted:\n{result.text()}"
    said = (result.hint + " " + result.message).lower()
    assert wrong.hint.lower() in said, (
        f"{wrong.why}: expected the hint to mention {wrong.hint!r}, got:\n"
        f"{result.text()}"
    )
