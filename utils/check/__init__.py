"""Student-facing checks, one module per lab (``lab1``, ``lab2``, ...).

In a lab: ``from utils.check import lab1 as check``, then ``check.relu(relu)`` after
each exercise and ``check.summary()`` at the end. Every lab module also offers
``check.reference("relu")`` (the reference implementation, for a stuck student; the
summary lists the exercise as "used the reference"), ``if check.ready("forward"):``
(guards a demo or training cell until the exercises it needs pass) and
``check.results_as_dict()`` (the results as data, for the batch grader). The shared
machinery (running, comparing, diagnosing, reporting, time limits) is in
:mod:`utils.check.core`.
"""

from utils.check.core import (
    FAILED,
    NOT_IMPLEMENTED,
    NOT_RUN,
    PASSED,
    USED_REFERENCE,
    CheckFailed,
    CheckResult,
    strict_mode,
)

__all__ = [
    "FAILED",
    "NOT_IMPLEMENTED",
    "NOT_RUN",
    "PASSED",
    "USED_REFERENCE",
    "CheckFailed",
    "CheckResult",
    "strict_mode",
]
