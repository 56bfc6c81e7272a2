r"""Multi-start statistics: do the smooth (gated) and the proximal routes reach the same minimiser?

From the same initial :math:`w^{(k)}` (:func:`~dgating.solvers.initial_point` with
``init="random"`` and ``seed=k``), :func:`~dgating.solvers.solve_gated` minimises :math:`L` from the
balanced lift of :math:`w^{(k)}` and :func:`~dgating.solvers.solve_prox` minimises :math:`L_w` from
:math:`w^{(k)}`. For :math:`D \ge 3` both problems are non-convex, so the routes may stop at
different local minimisers; the distance between the two, their objective values and whether each
is certified (:func:`~dgating.proofs_check.checks.check_penalised_certificate`: certified,
refuted or inconclusive) are recorded (figure F7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..gating import DGating
from ..problem import Problem
from ..solvers import initial_point, solve_gated, solve_prox
from .checks import STAT_TOL, check_penalised_certificate
from .result import CheckResult, to_builtin

__all__ = ["MultiStartResult", "check_multistart", "run_multistart"]


@dataclass(frozen=True)
class MultiStartResult:
    r"""Outcome of :func:`run_multistart` (arrays of shape ``(n_starts,)``).

    Attributes
    ----------
    problem : str
    depth : int
    lam : float
    seeds : tuple of int
    objective_gated, objective_prox : ndarray
        :math:`L_w` at the minimiser of each route (:math:`= L` at the gated one).
    distance : ndarray
        :math:`\|w_{\mathrm{gated}} - w_{\mathrm{prox}}\| / \max(1, \|w_{\mathrm{prox}}\|)`.
    same : ndarray of bool
        ``distance <= match_tol``.
    same_value : ndarray of bool
        :math:`|L_w^{\mathrm{gated}} - L_w^{\mathrm{prox}}| \le 10^{-9}(1 + |L_w^{\mathrm{prox}}|)`:
        equal objective values, e.g. minimisers related by a symmetry of a network (a permutation
        of hidden units or a sign flip of a tanh unit) or differing along an exactly flat
        direction (the bias of a hidden unit whose outgoing weights are zero), which the distance
        in :math:`w` counts as different.
    certified_gated, certified_prox : ndarray of bool
        Each minimiser certified as a local minimiser of :math:`L_w` (the gated one also
        balanced): every part of
        :func:`~dgating.proofs_check.checks.check_penalised_certificate` passes or is
        not applicable.
    inconclusive_gated, inconclusive_prox : ndarray of bool
        No part fails but one is inconclusive (a singular reduced Hessian whose null directions
        are not resolved), so the minimiser is neither certified nor refuted.
    support_gated, support_prox : ndarray of int
        Number of non-zero groups.
    match_tol : float
    """

    problem: str
    depth: int
    lam: float
    seeds: tuple[int, ...]
    objective_gated: np.ndarray
    objective_prox: np.ndarray
    distance: np.ndarray
    same: np.ndarray
    same_value: np.ndarray
    certified_gated: np.ndarray
    certified_prox: np.ndarray
    inconclusive_gated: np.ndarray
    inconclusive_prox: np.ndarray
    support_gated: np.ndarray
    support_prox: np.ndarray
    match_tol: float

    @property
    def value_match_rate(self) -> float:
        """Fraction of starts where both routes reach the same objective value."""
        return float(np.mean(self.same_value)) if self.same_value.size else float("nan")

    @property
    def match_rate(self) -> float:
        """Fraction of starts where both routes reach the same minimiser."""
        return float(np.mean(self.same)) if self.same.size else float("nan")

    def to_dict(self) -> dict:
        """JSON-able dictionary of all fields plus ``match_rate``."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["match_rate"] = self.match_rate
        out["value_match_rate"] = self.value_match_rate
        return to_builtin(out)


def run_multistart(
    problem: Problem,
    depth: int,
    lam: float,
    *,
    seeds: Sequence[int] = range(5),
    init_scale: float = 0.5,
    match_tol: float = 1e-6,
    name: str = "",
) -> MultiStartResult:
    r"""Run both routes from ``init="random"`` starting points with the given ``seeds``.

    Parameters
    ----------
    problem : Problem
    depth : int
        :math:`D`.
    lam : float
        :math:`\lambda`.
    seeds : sequence of int, default=range(5)
        Seeds of :func:`~dgating.solvers.initial_point` (``init="random"``).
    init_scale : float, default=0.5
        Standard deviation of the starting points.
    match_tol : float, default=1e-6
        Relative distance below which the two minimisers count as the same.
    name : str, default=""
        Problem name recorded in the result.

    Returns
    -------
    MultiStartResult

    Examples
    --------
    >>> import numpy as np
    >>> from dgating import GroupedProblem
    >>> prob = GroupedProblem(np.eye(2), np.array([3.0, 0.1]), np.array([0, 1]))
    >>> ms = run_multistart(prob, 2, 0.2, seeds=[0, 1])  # convex: one minimiser
    >>> ms.match_rate, bool(ms.certified_gated.all() and ms.certified_prox.all())
    (1.0, True)
    """
    cols: dict[str, list] = {k: [] for k in ("og", "op", "dist", "cg", "cp", "sg", "sp")}
    groups = problem.groups
    for seed in seeds:
        w0 = initial_point(problem, lam, init="random", seed=int(seed), init_scale=init_scale)
        ra = solve_gated(problem, depth, lam, w0=w0)
        rb = solve_prox(problem, depth, lam, w0=w0)
        cols["og"].append(ra.objective)
        cols["op"].append(rb.objective)
        cols["dist"].append(
            float(np.linalg.norm(ra.w - rb.w)) / max(1.0, float(np.linalg.norm(rb.w)))
        )
        balanced = DGating(depth, groups).relative_imbalance(ra.params) <= STAT_TOL
        cols["cg"].append(_verdict(problem, depth, lam, ra.w) if balanced else "fail")
        cols["cp"].append(_verdict(problem, depth, lam, rb.w))
        cols["sg"].append(len(ra.support(groups)))
        cols["sp"].append(len(rb.support(groups)))
    dist = np.array(cols["dist"], dtype=float)
    og, op = np.array(cols["og"], dtype=float), np.array(cols["op"], dtype=float)
    return MultiStartResult(
        problem=name,
        depth=int(depth),
        lam=float(lam),
        seeds=tuple(int(s) for s in seeds),
        objective_gated=og,
        objective_prox=op,
        distance=dist,
        same=dist <= match_tol,
        same_value=np.abs(og - op) <= 1e-9 * (1.0 + np.abs(op)),
        certified_gated=np.array(cols["cg"]) == "pass",
        certified_prox=np.array(cols["cp"]) == "pass",
        inconclusive_gated=np.array(cols["cg"]) == "inconclusive",
        inconclusive_prox=np.array(cols["cp"]) == "inconclusive",
        support_gated=np.array(cols["sg"], dtype=int),
        support_prox=np.array(cols["sp"], dtype=int),
        match_tol=float(match_tol),
    )


def _verdict(problem: Problem, depth: int, lam: float, w: np.ndarray) -> str:
    """``"pass"`` (certified), ``"fail"`` or ``"inconclusive"`` from the certificate's parts."""
    statuses = {c.status for c in check_penalised_certificate(problem, depth, lam, w)}
    for status in ("fail", "inconclusive"):
        if status in statuses:
            return status
    return "pass"


def check_multistart(ms: MultiStartResult, name: str = "multistart.certified") -> CheckResult:
    r"""Every multi-start minimiser of both routes is certified.

    ``value`` is the fraction of the :math:`2K` minimisers that are neither certified nor
    inconclusive (tolerance 0); with none refuted but some inconclusive the check is
    ``"inconclusive"``. The details hold the match rate and the objective values of both routes.
    """
    n = 2 * len(ms.seeds)
    certified = int(np.sum(ms.certified_gated) + np.sum(ms.certified_prox))
    undecided = int(np.sum(ms.inconclusive_gated) + np.sum(ms.inconclusive_prox))
    failed = n - certified - undecided
    details = {
        "match_rate": ms.match_rate,
        "value_match_rate": ms.value_match_rate,
        "n_starts": len(ms.seeds),
        "n_inconclusive": undecided,
        "objective_gated": ms.objective_gated,
        "objective_prox": ms.objective_prox,
        "max_distance": float(ms.distance.max(initial=0.0)),
    }
    if not failed and undecided:
        reason = f"{undecided} of {n} minimisers neither certified nor refuted"
        return CheckResult.undecided(name, "inconclusive", 0.0, reason, 0.0, **details)
    return CheckResult.from_violation(name, failed / n if n else 0.0, 0.0, **details)
