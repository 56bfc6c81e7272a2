r"""Result objects of the verification checks.

A check never asserts: it measures one quantity (``details["value"]``), compares it with a
tolerance and returns a frozen :class:`CheckResult` with a ``status``, one of :data:`STATUSES`:

* ``"pass"``: the measurement is finite and within the tolerance, and the conditions tested are
  sufficient for the claim;
* ``"fail"``: the measurement is outside the tolerance or not finite (a NaN never passes);
* ``"inconclusive"``: the measurement is within the tolerance but does not decide the claim
  (e.g. a Hessian that is singular to round-off, whose null directions could not be resolved);
  ``details["reason"]`` says why;
* ``"not-applicable"``: the condition is void at this point (e.g. the zero-group condition for
  :math:`q = 2/D < 1`, which every zero group satisfies); ``details["reason"]`` says why.

``margin`` says how far inside (positive) or outside (negative) the tolerance the measurement is,
e.g. ``tol - violation``; ``passed`` is ``status == "pass"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["STATUSES", "CheckResult", "outcome", "to_builtin"]

#: The four verdicts of a check.
STATUSES = ("pass", "fail", "inconclusive", "not-applicable")


def outcome(status: str, expect: str) -> str:
    """Compare a check's ``status`` with the expected one, ``expect`` (``"pass"``/``"fail"``).

    ``"ok"`` when they match (``"not-applicable"`` counts as ``"pass"``), ``"inconclusive"`` for
    an inconclusive check expected to pass, ``"unexpected"`` otherwise (an inconclusive check
    expected to fail, e.g. a negative control that is not flagged, is unexpected).

    Examples
    --------
    >>> outcome("not-applicable", "pass"), outcome("inconclusive", "pass")
    ('ok', 'inconclusive')
    >>> outcome("inconclusive", "fail"), outcome("pass", "fail")
    ('unexpected', 'unexpected')
    """
    if status == "not-applicable":
        status = "pass"
    if status == expect:
        return "ok"
    return "inconclusive" if status == "inconclusive" and expect == "pass" else "unexpected"


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
    status : {"pass", "fail", "inconclusive", "not-applicable"}
        The verdict (see the module docstring).
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
    >>> CheckResult.from_violation("demo", 1e-3, 1e-8).status
    'fail'
    >>> CheckResult.from_violation("demo", float("nan"), 1e-8).status
    'fail'
    >>> CheckResult.undecided("demo", "not-applicable", 1e-8, "void for q < 1").passed
    False
    """

    name: str
    status: str
    margin: float
    tol: float
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"`status` must be one of {STATUSES}; got {self.status!r}.")

    @property
    def passed(self) -> bool:
        """``status == "pass"``."""
        return self.status == "pass"

    @classmethod
    def from_violation(
        cls, name: str, violation: float, tol: float, value: float | None = None, **details: Any
    ) -> CheckResult:
        """A result with ``margin = tol - violation``: ``"pass"`` when ``violation <= tol``,
        ``"fail"`` otherwise and whenever ``violation`` or ``value`` is not finite."""
        violation = float(violation)
        value = violation if value is None else float(value)
        finite = math.isfinite(violation) and math.isfinite(value)
        margin = tol - violation if finite else -math.inf
        status = "pass" if finite and margin >= 0 else "fail"
        details = {"value": value, **details}
        return cls(name, status, float(margin), float(tol), to_builtin(details))

    @classmethod
    def undecided(
        cls,
        name: str,
        status: str,
        tol: float,
        reason: str,
        value: float = math.nan,
        margin: float = math.nan,
        **details: Any,
    ) -> CheckResult:
        """An ``"inconclusive"`` or ``"not-applicable"`` result with the ``reason`` in its
        details."""
        if status not in ("inconclusive", "not-applicable"):
            raise ValueError(
                f"`status` must be 'inconclusive' or 'not-applicable'; got {status!r}."
            )
        details = {"value": float(value), "reason": reason, **details}
        return cls(name, status, float(margin), float(tol), to_builtin(details))

    @property
    def value(self) -> float:
        """The measured quantity, ``details["value"]``."""
        value = self.details.get("value")
        return math.nan if value is None else float(value)

    def to_dict(self) -> dict:
        """JSON-able dictionary (keys ``name, status, passed, margin, tol, value, details``)."""
        return {
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "margin": self.margin,
            "tol": self.tol,
            "value": self.value,
            "details": to_builtin(self.details),
        }
