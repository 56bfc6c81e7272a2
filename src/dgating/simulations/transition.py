r"""From a non-sparse regime into sparse optimisation (docs/theory.md [T-transition]), and the
non-smooth baselines.

Along the gated flow every group starts in a smooth, ridge-like regime (while :math:`\Delta \ne 0`
the penalty seen by :math:`w_j` is smooth) and some groups then *enter the sparse regime*: one
proximal-gradient step on :math:`L_w` at :math:`w(t)` would set them to exactly zero.
:func:`sparse_transition` records, for every group, the time from which it stays there, and the
support size over time. :func:`prox_gradient_path` and :func:`subgradient_path` run the two
classical methods on :math:`L_w` from the same initial :math:`w`, with iteration :math:`k` placed at
time :math:`k\eta` so the three can share one time axis (:func:`compare_paths`, used by figures
F4/F5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_array, check_positive
from ..gating import GatedParams
from ..objectives import GatedObjective, PenalisedObjective
from ..problem import Problem
from .flow import FlowResult, integrate_flow

__all__ = [
    "PathResult",
    "TransitionResult",
    "compare_paths",
    "prox_gradient_path",
    "sparse_transition",
    "subgradient_path",
]


@dataclass(frozen=True)
class TransitionResult:
    r"""When each group of a flow enters the sparse regime.

    Attributes
    ----------
    t : ndarray, shape (n_t,)
    support : ndarray of bool, shape (n_t, n_groups)
        Prox-step support along the flow.
    support_size : ndarray of int, shape (n_t,)
    entry_time : ndarray, shape (n_groups,)
        First output time from which group ``j`` stays out of the prox support until the end
        (``inf`` if it is in the support at the end, 0 if it never was).
    threshold_time : ndarray, shape (n_groups,)
        First time from which :math:`\|w_j(t)\| \le` ``threshold`` until the end (``inf`` if never).
    group_norms : ndarray, shape (n_t, n_groups)
    """

    t: np.ndarray
    support: np.ndarray
    support_size: np.ndarray
    entry_time: np.ndarray
    threshold_time: np.ndarray
    group_norms: np.ndarray


def _stay_time(t: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """First time from which ``inside[:, j]`` holds until the end; ``inf`` if not at the end."""
    n_t, J = inside.shape
    out = np.full(J, np.inf)
    for j in range(J):
        if not inside[-1, j]:
            continue
        outside = np.flatnonzero(~inside[:, j])
        out[j] = t[outside[-1] + 1] if outside.size else t[0]
    return out


def sparse_transition(result: FlowResult, *, threshold: float = 1e-6) -> TransitionResult:
    r"""Entry times into the sparse regime and support evolution along a flow.

    Parameters
    ----------
    result : FlowResult
        A recorded flow (its ``support`` is the prox-step support).
    threshold : float, default=1e-6
        Norm threshold for ``threshold_time``.

    Returns
    -------
    TransitionResult
    """
    support = np.asarray(result.support, dtype=bool)
    norms = result.group_norms
    return TransitionResult(
        t=result.t,
        support=support,
        support_size=support.sum(-1),
        entry_time=_stay_time(result.t, ~support),
        threshold_time=_stay_time(result.t, norms <= threshold),
        group_norms=norms,
    )


@dataclass(frozen=True)
class PathResult:
    r"""Iterates of a method on :math:`L_w`, iteration :math:`k` at time :math:`k\eta`.

    Attributes
    ----------
    t : ndarray, shape (K + 1,)
    w : ndarray, shape (K + 1, n_features)
    group_norms : ndarray, shape (K + 1, n_groups)
    objective : ndarray, shape (K + 1,)
        :math:`L_w(w_k)`.
    support : ndarray of bool, shape (K + 1, n_groups)
        Groups with :math:`w_j \ne 0` exactly.
    method : str
    """

    t: np.ndarray
    w: np.ndarray
    group_norms: np.ndarray
    objective: np.ndarray
    support: np.ndarray
    method: str


def _default_step(problem: Problem) -> float:
    lip = problem.lipschitz()
    return 1.0 / lip if np.isfinite(lip) and lip > 0 else 1e-2


def _path(obj: PenalisedObjective, ws: list[np.ndarray], step: float, method: str) -> PathResult:
    W = np.array(ws)
    norms = np.sqrt(obj.groups.sq_norms(W))
    return PathResult(
        t=step * np.arange(len(ws)),
        w=W,
        group_norms=norms,
        objective=np.array([obj.value(w) for w in W]),
        support=norms > 0,
        method=method,
    )


def prox_gradient_path(
    problem: Problem,
    depth: int,
    lam: float,
    w0: np.ndarray,
    *,
    n_iter: int,
    step: float | None = None,
) -> PathResult:
    r"""Plain proximal gradient, exact group prox and fixed step :math:`\eta`:
    :math:`w^+ = \mathrm{prox}_{\eta\lambda\|\cdot\|^q}(w - \eta\nabla L_0(w))`
    (exact group prox, fixed step :math:`\eta`, default :math:`1/\mathrm{Lip}(\nabla L_0)`).

    Returns
    -------
    PathResult
        Groups reach exact zeros in finitely many steps.
    """
    obj = PenalisedObjective(problem, depth, lam)
    step = _default_step(problem) if step is None else check_positive(step, "step")
    n_iter = check_positive(n_iter, "n_iter", integer=True)
    w = check_array(w0, "w0", shape=(problem.n_features,)).copy()
    ws = [w]
    for _ in range(n_iter):
        w = obj.penalty.prox(w - step * problem.grad(w), step, problem.groups)
        ws.append(w)
    return _path(obj, ws, step, "prox")


def subgradient_path(
    problem: Problem,
    depth: int,
    lam: float,
    w0: np.ndarray,
    *,
    n_iter: int,
    step: float | None = None,
) -> PathResult:
    r"""Subgradient method :math:`w^+ = w - \eta s` with the minimum-norm subgradient :math:`s`.

    On a non-zero group :math:`s_j = g_j + \lambda q\|w_j\|^{q-2}w_j`; on a zero group
    :math:`s_j = g_j \max(0, 1 - \lambda/\|g_j\|)` for :math:`q = 1` and :math:`s_j = 0` for
    :math:`q < 1` (the subdifferential there is the whole space). Groups oscillate around zero
    instead of reaching it; near zero the step :math:`\eta\lambda q\|w_j\|^{q-1}` overshoots.

    Returns
    -------
    PathResult
    """
    obj = PenalisedObjective(problem, depth, lam)
    step = _default_step(problem) if step is None else check_positive(step, "step")
    n_iter = check_positive(n_iter, "n_iter", integer=True)
    groups = problem.groups
    q = obj.penalty.q
    w = check_array(w0, "w0", shape=(problem.n_features,)).copy()
    ws = [w]
    for _ in range(n_iter):
        g = problem.grad(w)
        norms = groups.norms(w)
        nz = norms > 0
        coef = np.zeros_like(norms)
        coef[nz] = lam * q * norms[nz] ** (q - 2.0)
        s = g + groups.expand(coef, fill=0.0) * w
        zero_groups = groups.expand((~nz).astype(float), fill=0.0) > 0
        if q == 1.0:
            gn = groups.norms(g)
            shrink = np.zeros_like(gn)
            big = gn > lam
            shrink[big] = 1.0 - lam / gn[big]
            s[zero_groups] = (g * groups.expand(shrink, fill=1.0))[zero_groups]
        else:
            s[zero_groups] = 0.0
        w = w - step * s
        ws.append(w)
    return _path(obj, ws, step, "subgradient")


def compare_paths(
    objective: GatedObjective,
    params0: GatedParams,
    t_end: float,
    *,
    n_t: int = 201,
    step: float | None = None,
    rtol: float = 1e-10,
) -> dict[str, np.ndarray]:
    r"""Gated flow, proximal gradient and subgradient from the same initial :math:`w_0`.

    :math:`w_0 = \mathrm{collapse}(\text{params0})`; the two methods on :math:`L_w` use step
    ``step`` (default :math:`1/\mathrm{Lip}`) and ``ceil(t_end / step)`` iterations.

    Returns
    -------
    dict
        ``"flow_t"`` (n_t,), ``"flow_norms"`` (n_t, J), ``"flow_support"`` (n_t, J),
        ``"entry_time"`` (J,), ``"prox_t"``, ``"prox_norms"``, ``"prox_objective"``,
        ``"subgradient_t"``, ``"subgradient_norms"``, ``"subgradient_objective"``,
        ``"flow_objective"`` (:math:`L_w` along the flow) and ``"w0"`` (p,).
    """
    problem = objective.problem
    params0 = objective.gating.check(params0)
    w0 = objective.gating.collapse(params0)
    t_eval = np.linspace(0.0, t_end, n_t)
    flow = integrate_flow(objective, params0, (0.0, t_end), t_eval=t_eval, rtol=rtol)
    trans = sparse_transition(flow)
    step = _default_step(problem) if step is None else check_positive(step, "step")
    n_iter = max(1, int(np.ceil(t_end / step)))
    prox = prox_gradient_path(problem, objective.depth, objective.lam, w0, n_iter=n_iter, step=step)
    sub = subgradient_path(problem, objective.depth, objective.lam, w0, n_iter=n_iter, step=step)
    return {
        "flow_t": flow.t,
        "flow_norms": flow.group_norms,
        "flow_support": flow.support,
        "flow_objective": flow.penalised,
        "entry_time": trans.entry_time,
        "prox_t": prox.t,
        "prox_norms": prox.group_norms,
        "prox_objective": prox.objective,
        "subgradient_t": sub.t,
        "subgradient_norms": sub.group_norms,
        "subgradient_objective": sub.objective,
        "w0": w0,
    }
