r"""Regularisation paths: :math:`\min_w L_w(w; \lambda)` on a decreasing grid of :math:`\lambda`,
each solve warm-started from the previous solution.

The grid starts at :func:`lam_max`, where the solution is zero, and decreases geometrically.
For :math:`D = 2` (group lasso, convex) every point of the path is the global minimiser. For
:math:`D \ge 3` (:math:`q = 2/D < 1`, non-convex) the path **follows one local minimum
continuously**: each solve starts from one proximal-gradient step (step :math:`1/L`, see
:func:`lam_max`) taken from the previous solution, so a group enters the model when that step
activates it, and the path may differ from independent cold-started solves wherever
:math:`L_w` has several local minima.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._validation import InvalidParameterError, check_array, check_depth, check_positive
from .objectives import PenalisedObjective
from .penalties import GroupLqPenalty, effective_q
from .problem import Problem
from .solvers import _curvature_estimate, _restrict, solve

__all__ = ["PathResult", "lam_max", "lam_grid", "solve_path"]


@dataclass(frozen=True)
class PathResult:
    r"""A regularisation path of :math:`L_w = L_0 + \lambda\sum_j\|w_j\|^{2/D}`.

    Attributes
    ----------
    lams : ndarray, shape (K,)
        The grid, decreasing.
    coefs : ndarray, shape (K, n_features)
        ``coefs[k]`` minimises :math:`L_w` at ``lams[k]`` (globally for :math:`D = 2`; the local
        minimum followed from ``lams[0]`` for :math:`D \ge 3`).
    objectives : ndarray, shape (K,)
        :math:`L_w` at each solution.
    supports : ndarray of bool, shape (K, n_groups)
        ``supports[k, j]``: group :math:`j` is non-zero at ``lams[k]``.
    stationarity : ndarray, shape (K,)
        Relative first-order residual of each solution.
    converged : ndarray of bool, shape (K,)
        Each solve reached ``tol``.
    iterations : ndarray of int, shape (K,)
        Solver iterations per point.
    seconds : ndarray, shape (K,)
        Wall-clock time per point (the warm-start step included).
    lam_max : float
        :func:`lam_max` of the problem (``nan`` when the grid was given).
    depth : int
        :math:`D`.
    method : str
        ``"prox"`` or ``"gated"``.
    """

    lams: np.ndarray
    coefs: np.ndarray
    objectives: np.ndarray
    supports: np.ndarray
    stationarity: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    seconds: np.ndarray
    lam_max: float
    depth: int
    method: str


def _unpenalised_fit(problem: Problem, tol: float) -> np.ndarray:
    r""":math:`\operatorname{argmin}_{w:\, w_{G_j} = 0\ \forall j} L_0(w)`: the unpenalised features
    (e.g. the intercept) fitted with every group at zero; zero when there are none.

    Stationary to ``tol`` relative to the gradient scale of the full problem (that of the free
    features alone may vanish, e.g. an intercept with balanced classes)."""
    w = np.zeros(problem.n_features)
    free = np.flatnonzero(~problem.groups.penalised)
    if free.size:
        sub = _restrict(problem, free)
        ratio = PenalisedObjective(problem, 2, 0.0).scale / PenalisedObjective(sub, 2, 0.0).scale
        w[free] = solve(sub, 2, 0.0, w0=np.zeros(free.size), tol=tol * ratio).w
    return w


def _step(problem: Problem, w: np.ndarray, grad: np.ndarray) -> float:
    r"""The step :math:`t = 1/L` of the path's proximal-gradient steps: :math:`L` is
    :meth:`Problem.lipschitz` (exact :math:`\|X\|_2^2 \sup\ell''` for a GroupedProblem), or
    else a 20-step power-iteration estimate of the largest curvature of :math:`L_0` at ``w``."""
    lip = problem.lipschitz()
    if not (np.isfinite(lip) and lip > 0):
        lip = _curvature_estimate(problem, w, grad, n_iter=20)
    return 1.0 / lip if np.isfinite(lip) and lip > 0 else 1.0


def lam_max(problem: Problem, depth: int, *, tol: float = 1e-10) -> float:
    r"""The smallest :math:`\lambda` at which the path's solution is zero on every group.

    Let :math:`w^0` fit the unpenalised features with every group at zero
    (:math:`w^0_{G_j} = 0`), :math:`g_j = \nabla_{w_j} L_0(w^0)` and :math:`t = 1/L` with
    :math:`L` the Lipschitz constant of :math:`\nabla L_0`.

    * :math:`D = 2` (:math:`q = 1`): :math:`w^0` is the global minimiser of the convex
      :math:`L_w` iff :math:`\|g_j\| \le \lambda` for all :math:`j` (docs/theory.md
      [T-stationarity]), so :math:`\lambda_{\max} = \max_j \|g_j\|`.
    * :math:`D \ge 3` (:math:`q < 1`): :math:`w^0` is a local minimiser for **every**
      :math:`\lambda > 0` (infinite slope of :math:`r^q` at 0), so "the solution is zero" is
      defined by the proximal-gradient map the path uses: group :math:`j` stays at zero after
      one step :math:`\mathrm{prox}_{t\lambda P}(w^0 - t\nabla L_0(w^0))` iff
      :math:`t\|g_j\| \le \tau(t\lambda, q)`, with the prox threshold (docs/theory.md [T-prox])
      :math:`\tau(s, q) = c_q (2s(1-q))^{1/(2-q)}`, :math:`c_q = \frac{2-q}{2(1-q)}`. Solving for
      :math:`\lambda`,

      .. math::
          \lambda_{\max} = \max_j \frac{(t\|g_j\| / c_q)^{2-q}}{2t(1-q)},

      above which :math:`w^0` is a fixed point of the proximal-gradient map (so the path,
      started there, stays at zero) and below which one group leaves zero. As
      :math:`q \to 1` this tends to :math:`\max_j\|g_j\|`, the :math:`D = 2` value.

    Parameters
    ----------
    problem : Problem
        Data term and grouping.
    depth : int
        :math:`D \ge 2`.
    tol : float, default=1e-10
        Relative stationarity of the unpenalised fit :math:`w^0`.

    Returns
    -------
    float
        :math:`\lambda_{\max} \ge 0` (0 when :math:`g = 0`, e.g. no penalised group), rounded
        up by 8 ulps so that the zero test holds at ``lam_max`` itself in floating point.

    Examples
    --------
    >>> import numpy as np
    >>> from dgating.problem import GroupedProblem
    >>> prob = GroupedProblem(np.eye(2), np.array([3.0, 1.0]), np.array([0, 1]))
    >>> round(lam_max(prob, 2), 12)  # max_j |x_j^T y| / n
    1.5
    """
    q = effective_q(check_depth(depth))
    w0 = _unpenalised_fit(problem, check_positive(tol, "tol"))
    grad = problem.grad(w0)
    norms = problem.groups.norms(grad)
    top = float(norms.max(initial=0.0))
    if q < 1.0 and top > 0.0:
        t = _step(problem, w0, grad)
        c_q = (2.0 - q) / (2.0 * (1.0 - q))
        top = float((t * top / c_q) ** (2.0 - q) / (2.0 * t * (1.0 - q)))
    return float(top * (1.0 + 8.0 * np.finfo(float).eps))


def lam_grid(lam_max: float, n_lams: int = 50, lam_min_ratio: float = 1e-3) -> np.ndarray:
    r"""The default grid :math:`\lambda_k = \lambda_{\max} r^{k/(K-1)}`, :math:`k = 0..K-1`.

    Parameters
    ----------
    lam_max : float
        :math:`\lambda_{\max} > 0`, see :func:`lam_max`.
    n_lams : int, default=50
        :math:`K`.
    lam_min_ratio : float, default=1e-3
        :math:`r = \lambda_{K-1}/\lambda_0 \in (0, 1)`.

    Returns
    -------
    ndarray, shape (K,)
        Geometric and decreasing, from ``lam_max`` to ``lam_max * lam_min_ratio``.
    """
    lam_max = check_positive(lam_max, "lam_max")
    n_lams = check_positive(n_lams, "n_lams", integer=True)
    ratio = check_positive(lam_min_ratio, "lam_min_ratio")
    if ratio >= 1.0:
        raise InvalidParameterError(f"`lam_min_ratio` must be in (0, 1); got {ratio}.")
    return lam_max * np.geomspace(1.0, ratio, n_lams)


def _default_lams(
    problem: Problem, depth: int, n_lams: int, lam_min_ratio: float
) -> tuple[float, np.ndarray]:
    """``(lam_max, grid)``; the grid is ``[0.0]`` when ``lam_max = 0`` (nothing to penalise)."""
    top = lam_max(problem, depth)
    return top, lam_grid(top, n_lams, lam_min_ratio) if top > 0 else np.zeros(1)


def _check_lams(lams: object) -> np.ndarray:
    lams = check_array(lams, "lams", ndim=1)
    if lams.size == 0 or np.any(lams < 0):
        raise InvalidParameterError(
            f"`lams` must be a non-empty list of numbers >= 0; got {lams.tolist()}."
        )
    return np.sort(lams)[::-1]


def solve_path(
    problem: Problem,
    depth: int,
    lams: np.ndarray | None = None,
    *,
    n_lams: int = 50,
    lam_min_ratio: float = 1e-3,
    method: str = "prox",
    tol: float = 1e-8,
    **kwargs,
) -> PathResult:
    r"""Solve :math:`\min_w L_0(w) + \lambda\sum_j\|w_j\|^{2/D}` along a decreasing grid of
    :math:`\lambda`, warm-starting each solve from the previous solution.

    The first solve starts from :math:`w^0` (the unpenalised fit, :func:`lam_max`). For
    :math:`D = 2` every solve starts at the previous solution (the problem is convex: the solver
    finds the minimiser from any start). For :math:`D \ge 3` every solve starts from one
    proximal-gradient step :math:`\mathrm{prox}_{t\lambda_k P}(w - t\nabla L_0(w))`,
    :math:`t = 1/L`, at the previous solution :math:`w`; it is what lets a group enter: a zero
    group is locally optimal for every :math:`\lambda`, so a solver started at the previous
    solution would never leave it; the path therefore follows the local
    minimum continuously: a zero group enters when that step activates it,
    :math:`t\|g_j\| > \tau(t\lambda_k, q)` (the rule that defines :func:`lam_max`), or when
    one of the solver's own proximal steps (whose line search may take longer steps) does.

    Parameters
    ----------
    problem : Problem
        Data term and grouping (a :class:`~dgating.problem.GroupedProblem` may hold a sparse
        ``X``).
    depth : int
        :math:`D \ge 2`.
    lams : array_like of float, shape (K,), optional
        The grid; solved and returned in decreasing order. By default
        :func:`lam_grid` ``(lam_max(problem, depth), n_lams, lam_min_ratio)``.
    n_lams : int, default=50
        Size of the default grid.
    lam_min_ratio : float, default=1e-3
        Smallest over largest :math:`\lambda` of the default grid.
    method : {"prox", "gated"}, default="prox"
        Solver (:func:`~dgating.solvers.solve`).
    tol : float, default=1e-8
        Relative stationarity target of each solve.
    **kwargs
        Passed to the solver (e.g. ``max_iter``).

    Returns
    -------
    PathResult

    Examples
    --------
    >>> import numpy as np
    >>> from dgating.problem import GroupedProblem
    >>> prob = GroupedProblem(np.eye(2), np.array([3.0, 1.0]), np.array([0, 1]))
    >>> path = solve_path(prob, 2, n_lams=3, lam_min_ratio=0.1)
    >>> path.lams.round(4).tolist()
    [1.5, 0.4743, 0.15]
    >>> path.coefs.round(4).tolist()  # group lasso with X = I, n = 2: w_j = max(y_j - 2 lam, 0)
    [[0.0, 0.0], [2.0513, 0.0513], [2.7, 0.7]]
    """
    depth = check_depth(depth)
    tol = check_positive(tol, "tol")
    w = _unpenalised_fit(problem, min(tol, 1e-10))
    if lams is None:
        top, lams = _default_lams(problem, depth, n_lams, lam_min_ratio)
    else:
        top, lams = float("nan"), _check_lams(lams)
    q, groups = effective_q(depth), problem.groups
    K = lams.size
    coefs = np.zeros((K, problem.n_features))
    objectives, stat, seconds = np.zeros(K), np.zeros(K), np.zeros(K)
    converged, iterations = np.zeros(K, dtype=bool), np.zeros(K, dtype=np.int64)
    for k, lam in enumerate(lams):
        start = time.perf_counter()
        w0 = w
        if q < 1.0:
            grad = problem.grad(w)
            t = _step(problem, w, grad)
            w0 = GroupLqPenalty(float(lam), q).prox(w - t * grad, t, groups)
        res = solve(problem, depth, float(lam), method=method, w0=w0, tol=tol, **kwargs)
        w = res.w
        coefs[k], objectives[k], stat[k] = w, res.objective, res.stationarity
        converged[k], iterations[k] = res.converged, res.iterations
        seconds[k] = time.perf_counter() - start
    return PathResult(
        lams=lams,
        coefs=coefs,
        objectives=objectives,
        supports=groups.norms(coefs) > 0,
        stationarity=stat,
        converged=converged,
        iterations=iterations,
        seconds=seconds,
        lam_max=top,
        depth=depth,
        method=method,
    )
