"""Typical wrong implementations, one module per lab, that every check must reject.

Each module defines ``LAB`` (the check module it targets), ``REFERENCE`` (the reference
module whose functions must pass) and ``WRONG``: a list of :class:`Wrong`, at least
three per exercise, each written the way a student would write the mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Wrong:
    """A wrong implementation of ``exercise`` and the words its hint must contain.

    Attributes:
        exercise: the check's name, e.g. ``"relu"``.
        impl: the wrong function or class.
        hint: a phrase the check's hint (or message) must contain, case-insensitive.
        why: what the mistake is, for the test's id.
    """

    exercise: str
    impl: Callable[..., Any]
    hint: str
    why: str
