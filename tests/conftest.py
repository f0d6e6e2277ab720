"""Each test starts with every lab's results empty, as a fresh notebook does.

The checks record each result in their lab (``LAB.record``), and a check may read
what an earlier exercise's check found (``check.training`` fails while a piece it
uses has failed): a result left by another test must not decide this one.
"""

from __future__ import annotations

import importlib

import pytest

LAB_MODULES = [f"utils.check.lab{n}" for n in range(1, 6)]


@pytest.fixture(autouse=True)
def _fresh_lab_results():
    for name in LAB_MODULES:
        importlib.import_module(name).LAB.results.clear()
    yield
