r"""Certificates that a candidate :math:`w` is a local minimiser of :math:`L_w` ([T-stationarity]).

* First order on the support: :math:`g_j + \lambda q \|w_j\|^{q-2} w_j = 0`.
* Zero groups: :math:`\|g_j\| \le \lambda` for :math:`q = 1`; automatic for :math:`q < 1`.
* Second order: the Hessian of :math:`L_0 + \lambda\sum_j\|w_j\|^q` reduced to the support is
  positive semidefinite.
* For gated parameters :math:`(\omega, \Gamma)`: balancedness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_array, check_positive
from .gating import DGating, GatedParams
from .objectives import PenalisedObjective
from .problem import Problem

__all__ = ["Certificate", "certify"]


@dataclass(frozen=True)
class Certificate:
    r"""Evidence for (or against) local optimality of ``w`` for :math:`L_w`.

    Attributes
    ----------
    stationarity : float
        Relative first-order residual (non-zero groups, zero groups, unpenalised features).
    zero_group_margin : float
        :math:`\min_{j: w_j = 0} (\lambda - \|g_j\|) / s` for :math:`q = 1` (``inf`` when there is
        no zero group or :math:`q < 1`): negative means a zero group violates its condition.
    min_eigenvalue : float
        Smallest eigenvalue of the reduced Hessian divided by its largest absolute eigenvalue
        (``inf`` on an empty support).
    passed : bool
        All three within ``tol`` / ``hess_tol``.
    support : list of int
        Labels of the non-zero groups.
    max_imbalance : float or None
        :math:`\max_{j,d} |\Delta_{j,d}| / \max(1, \|\omega_j\|^2)` when gated parameters were
        certified, else ``None``.
    """

    stationarity: float
    zero_group_margin: float
    min_eigenvalue: float
    passed: bool
    support: list[int]
    tol: float
    hess_tol: float
    max_imbalance: float | None = None


def certify(
    problem: Problem,
    depth: int,
    lam: float,
    w: np.ndarray | GatedParams,
    *,
    tol: float = 1e-7,
    hess_tol: float = 1e-8,
) -> Certificate:
    r"""Certify that ``w`` is a local minimiser of :math:`L_w = L_0 + \lambda\sum_j\|w_j\|^{2/D}`.

    Parameters
    ----------
    problem : Problem
        Supplies :math:`L_0` and the grouping.
    depth : int
        :math:`D`, :math:`q = 2/D`.
    lam : float
        :math:`\lambda`.
    w : ndarray, shape (n_features,), or GatedParams
        Candidate; gated parameters are collapsed and must also be balanced to ``tol`` (a
        minimiser of :math:`L` is balanced, docs/theory.md [T-balance]).
    tol : float, default=1e-7
        Bound on the relative stationarity (and on the violation of the zero-group condition).
    hess_tol : float, default=1e-8
        Bound on the negative part of the relative minimum eigenvalue of the reduced Hessian.

    Returns
    -------
    Certificate

    Examples
    --------
    >>> import numpy as np
    >>> from dgating.problem import GroupedProblem
    >>> prob = GroupedProblem(np.eye(2), np.array([3.0, 0.1]), np.array([0, 1]))
    >>> certify(prob, 2, 0.2, np.array([2.6, 0.0])).passed
    True
    >>> certify(prob, 2, 0.2, np.array([2.6001, 0.0])).passed  # perturbed: not stationary
    False
    """
    obj = PenalisedObjective(problem, depth, lam)
    imbalance = None
    if isinstance(w, GatedParams):
        gating = DGating(depth, problem.groups)
        params = gating.check(w)
        imbalance = gating.relative_imbalance(params)
        w = gating.collapse(params)
    w = check_array(w, "w", shape=(problem.n_features,))
    tol, hess_tol = check_positive(tol, "tol"), check_positive(hess_tol, "hess_tol")
    grad = problem.grad(w)
    stat = obj.stationarity(w, grad)
    groups = problem.groups
    norms = groups.norms(w)
    zero = norms == 0
    margin = float("inf")
    if obj.penalty.q == 1.0 and np.any(zero):
        margin = float(np.min(lam - groups.norms(grad)[zero])) / obj.scale
    H, idx = obj.reduced_hessian(w)
    if idx.size:
        evals = np.linalg.eigvalsh(H)
        min_eig = float(evals[0] / max(np.abs(evals).max(), np.finfo(float).tiny))
    else:
        min_eig = float("inf")
    passed = stat <= tol and margin >= -tol and min_eig >= -hess_tol
    passed = passed and (imbalance is None or imbalance <= tol)
    return Certificate(
        stationarity=stat,
        zero_group_margin=margin,
        min_eigenvalue=min_eig,
        passed=bool(passed),
        support=[int(j) for j in np.flatnonzero(~zero)],
        tol=tol,
        hess_tol=hess_tol,
        max_imbalance=imbalance,
    )
