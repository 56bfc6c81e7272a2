r"""Result objects of the verification checks.

A check never asserts: it measures one quantity (``details["value"]``), compares it with a
tolerance and returns a frozen :class:`CheckResult`. ``margin`` says how far inside (positive) or
outside (negative) the tolerance the measurement is, e.g. ``tol - violation``; ``passed`` is
``margin >= 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CheckResult", "to_builtin"]


def to_builtin(x: Any) -> Any:
    """Convert numpy scalars and arrays (nested in dicts, lists, tuples) to Python builtins."""
    if isinstance(x, dict):
        return {str(k): to_builtin(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_builtin(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_builtin(x.tolist())
    if isinstance(x, np.bool_ | bool):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating | float):
        return float(x)
    return x


@dataclass(frozen=True)
class CheckResult:
    r"""Outcome of one check.

    Attributes
    ----------
    name : str
        Check name, e.g. ``"a.Lw_stationarity"``.
    passed : bool
        Whether the measured value lies within the tolerance.
    margin : float
        Distance to the tolerance in the check's units, e.g. ``tol - violation``; negative means
        failed.
    tol : float
        The tolerance.
    details : dict
        Evidence; always holds ``"value"`` (the measured quantity shown in reports) and JSON-able
        entries only.

    Examples
    --------
    >>> res = CheckResult.from_violation("demo", 1e-12, 1e-8)
    >>> res.passed, res.margin > 0
    (True, True)
    >>> CheckResult.from_violation("demo", 1e-3, 1e-8).passed
    False
    """

    name: str
    passed: bool
    margin: float
    tol: float
    details: dict = field(default_factory=dict)

    @classmethod
    def from_violation(
        cls, name: str, violation: float, tol: float, value: float | None = None, **details: Any
    ) -> CheckResult:
        """A result with ``margin = tol - violation`` (``nan`` violations fail)."""
        violation = float(violation)
        margin = tol - violation if math.isfinite(violation) else -math.inf
        details = {"value": violation if value is None else float(value), **details}
        return cls(name, bool(margin >= 0), float(margin), float(tol), to_builtin(details))

    @property
    def value(self) -> float:
        """The measured quantity, ``details["value"]``."""
        value = self.details.get("value")
        return math.nan if value is None else float(value)

    def to_dict(self) -> dict:
        """JSON-able dictionary (keys ``name, passed, margin, tol, value, details``)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "margin": self.margin,
            "tol": self.tol,
            "value": self.value,
            "details": to_builtin(self.details),
        }
