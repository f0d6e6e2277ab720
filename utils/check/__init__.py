"""Student-facing checks, one module per lab (``lab1``, ``lab2``, ...).

In a lab: ``from utils.check import lab1 as check``, then ``check.relu(relu)`` after
each exercise and ``check.summary()`` at the end. The shared machinery (running,
comparing, diagnosing, reporting) is in :mod:`utils.check.core`.
"""

from utils.check.core import CheckFailed, CheckResult, strict_mode

__all__ = ["CheckFailed", "CheckResult", "strict_mode"]
