r"""Solvers for the non-smooth problem :math:`\min_w L_w(w)` and the smooth gated problem
:math:`\min_{\omega,\Gamma} L(\omega, \Gamma)`.

* :func:`solve_prox`: for a :class:`~dgating.problem.GroupedProblem` (squared or logistic loss),
  group block coordinate descent with working sets and Anderson acceleration
  (:mod:`dgating._bcd`; proximal Newton for the logistic loss); for any other problem (and as
  the fallback), proximal gradient on :math:`L_w` with the exact group prox
  (:func:`~dgating.penalties.scalar_prox`), a line search that lets the step grow as well as
  shrink, and a monotone accelerated variant (momentum is dropped whenever the accelerated step
  would increase :math:`L_w`, so the objective never increases, also for non-convex
  :math:`q < 1`). Once the support has settled, Newton's method on the support (where
  :math:`L_w` is smooth) finishes the job; it runs on the problem restricted to the support, so
  it is cheap when the support is small.
* :func:`solve_gated`: by default the prox route's support and point, lifted to balanced
  :math:`(\omega, \Gamma)` and checked / Newton-polished on :math:`L`; or (``start="lift"``,
  ``method="gd"``) L-BFGS (scipy) or plain gradient descent on :math:`L`; vanishing groups
  decay but never reach exact zero, so one proximal step on :math:`L_w` at the collapsed weights
  decides which groups are zero, and a damped Newton polish of :math:`L` on the surviving
  groups (again on the restricted problem) ends balanced to machine precision.

Both stop on the relative first-order stationarity of :math:`L_w`
(:meth:`~dgating.objectives.PenalisedObjective.stationarity`) and return a :class:`SolveResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize

from ._bcd import NON_FINITE, bcd_applicable, solve_bcd
from ._validation import (
    InvalidParameterError,
    check_array,
    check_choice,
    check_lam,
    check_positive,
)
from .gating import GatedParams
from .groups import Groups
from .objectives import GatedObjective, PenalisedObjective
from .problem import GroupedProblem, Problem

__all__ = ["INITS", "METHODS", "SolveResult", "initial_point", "solve", "solve_gated", "solve_prox"]


@dataclass(frozen=True)
class SolveResult:
    r"""Outcome of :func:`solve_prox` or :func:`solve_gated`.

    Attributes
    ----------
    w : ndarray, shape (n_features,)
        The solution (collapsed weights for the gated method).
    objective : float
        :math:`L_w(w)`.
    stationarity : float
        Relative first-order residual of :math:`L_w` at ``w``.
    converged : bool
        ``stationarity <= tol`` (and, gated, balanced to ``tol``).
    iterations : int
        Outer iterations (prox steps, or L-BFGS plus Newton iterations).
    seconds : float
        Wall-clock time.
    method : str
        ``"prox"`` or ``"gated"``.
    params : GatedParams or None
        Gated parameters :math:`(\omega, \Gamma)`; ``None`` for ``prox``.
    max_imbalance : float or None
        :math:`\max_{j,d}|\Delta_{j,d}| / \max(1, \|\omega_j\|^2)`; ``None`` for ``prox``.
    message : str
        Why the solver stopped.
    """

    w: np.ndarray
    objective: float
    stationarity: float
    converged: bool
    iterations: int
    seconds: float
    method: str
    params: GatedParams | None = None
    max_imbalance: float | None = None
    message: str = ""

    def support(self, groups: Groups) -> list[int]:
        """Sorted labels of the groups of ``groups`` that are non-zero in ``w``."""
        return [int(j) for j in np.flatnonzero(groups.norms(self.w) > 0)]


class _SubProblem(Problem):
    """The data term of ``base`` as a function of ``w[idx]`` alone, the other weights held at 0.

    Generic fallback of :func:`_restrict`; its dense Hessian costs one ``base.hvp`` per column.
    """

    def __init__(self, base: Problem, idx: np.ndarray, labels: np.ndarray) -> None:
        self.base, self.idx, self.groups = base, idx, Groups(labels)

    def _embed(self, x: np.ndarray) -> np.ndarray:
        full = np.zeros(self.base.n_features)
        full[self.idx] = x
        return full

    def value(self, w: np.ndarray) -> float:
        return self.base.value(self._embed(w))

    def value_and_grad(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        val, g = self.base.value_and_grad(self._embed(w))
        return val, g[self.idx]

    def grad(self, w: np.ndarray) -> np.ndarray:
        return self.value_and_grad(w)[1]

    def hvp(self, w: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.base.hvp(self._embed(w), self._embed(v))[self.idx]


def _restrict(problem: Problem, idx: np.ndarray) -> Problem:
    """``problem`` restricted to the features ``idx`` (the others fixed at zero), relabelled.

    A :class:`GroupedProblem` keeps its fast analytic path (the columns ``X[:, idx]``), so Newton
    steps on a small support cost :math:`O(n k^2)` rather than :math:`O(n p^2)`.
    """
    labels = problem.groups.labels[idx].copy()
    pen = labels >= 0
    labels[pen] = np.unique(labels[pen], return_inverse=True)[1]
    if isinstance(problem, GroupedProblem):
        return GroupedProblem(problem.X[:, idx], problem.y, labels, problem.loss)
    return _SubProblem(problem, idx, labels)


def _damped_newton(
    value: Callable[[np.ndarray], float],
    grad_hess: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    x: np.ndarray,
    done: Callable[[np.ndarray], bool],
    admissible: Callable[[np.ndarray], bool] = lambda x: True,
    max_iter: int = 50,
    require_pd: bool = False,
) -> tuple[np.ndarray, int]:
    """Newton's method with an eigenvalue-modified Hessian and Armijo backtracking.

    The Newton system is solved by Cholesky when the Hessian is positive definite (the usual
    case near a local minimum). Otherwise, with ``require_pd`` the iteration stops (the point is
    not in the basin of a strict local minimum), and without it the eigenvalues are replaced by
    their floored absolute values, so that the step is always a descent direction. The line
    search evaluates ``value`` only. Stops when ``done(x)`` holds, when no step decreases
    ``value``, or after ``max_iter`` steps. Returns the last accepted point and the number of
    accepted steps.
    """
    f = value(x)
    for it in range(max_iter):
        if done(x):
            return x, it
        g, H = grad_hess(x)
        try:
            step = -cho_solve(cho_factor(H), g)
        except np.linalg.LinAlgError:
            if require_pd:
                return x, it
            evals, evecs = np.linalg.eigh(H)
            floor = 1e-12 * max(1.0, float(np.abs(evals).max(initial=0.0)))
            step = -evecs @ ((evecs.T @ g) / np.maximum(np.abs(evals), floor))
        alpha, slope = 1.0, float(g @ step)
        if not slope < 0.0:  # round-off made the direction useless: nothing left to gain
            return x, it
        while alpha > 1e-10:
            x_new = x + alpha * step
            if admissible(x_new):
                f_new = value(x_new)
                # Armijo, with slack for round-off: near the minimum the predicted decrease
                # falls below the rounding error of ``value``; the full step is then accepted
                # and Newton's local quadratic convergence does the rest.
                if f_new <= f + 1e-4 * alpha * slope + 1e-14 * abs(f):
                    break
            alpha *= 0.5
        else:
            return x, it
        if np.array_equal(x_new, x):
            return x, it
        x, f = x_new, f_new
    return x, max_iter


#: Halvings of the step in one line search: enough to span the float64 range (2**-1100), so
#: only non-finite values (e.g. overflowing data) can exhaust it.
_MAX_BACKTRACKS = 1100

#: Newton polish is skipped on supports with more features than this (dense k x k Hessian).
_MAX_POLISH_FEATURES = 2000


def _polish_support(obj: PenalisedObjective, w: np.ndarray, tol: float) -> tuple[np.ndarray, int]:
    """Newton on the support of ``w``, where :math:`L_w` is smooth; zero groups stay zero.

    Works on the restricted problem (:func:`_restrict`) and stops at relative stationarity
    ``tol / 10`` on the support (same scale as ``obj``), leaving a margin for the full check.
    """
    idx = np.flatnonzero(obj.support_mask(w))
    sub = PenalisedObjective(_restrict(obj.problem, idx), obj.depth, obj.lam)
    norms0 = sub.groups.norms(w[idx])

    def grad_hess(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return sub.grad_on_support(x), sub.reduced_hessian(x)[0]

    def admissible(x: np.ndarray) -> bool:
        # A group may not shrink towards zero: the smooth model is only valid on the support.
        return bool(np.all(sub.groups.norms(x) > 1e-3 * norms0))

    def done(x: np.ndarray) -> bool:
        return float(sub.residuals(x).max()) <= 0.1 * tol * obj.scale

    # A Hessian that is not positive definite means that some group of this support is on its
    # way to zero (q < 1) or that the support is not yet the final one: leave it to the prox steps.
    x, n = _damped_newton(sub.value, grad_hess, w[idx], done, admissible, require_pd=True)
    full = np.zeros_like(w)
    full[idx] = x
    return full, n


def _curvature_estimate(
    problem: Problem, w: np.ndarray, direction: np.ndarray, n_iter: int = 2
) -> float:
    r"""A lower estimate of the largest eigenvalue of :math:`\nabla^2 L_0(w)`: the Rayleigh
    quotient after ``n_iter`` power iterations started from ``direction`` (``nan`` if it
    vanishes).

    Cheap (``n_iter`` Hessian-vector products) where the exact bound may cost an SVD; the line
    search of :func:`solve_prox` corrects an underestimate.
    """
    v = direction if np.any(direction) else np.ones_like(w)
    rayleigh = float("nan")
    for _ in range(n_iter):
        v = v / np.linalg.norm(v)
        try:
            hv = problem.hvp(w, v)
        except NotImplementedError:  # a custom Problem without Hessian-vector products
            return float("nan")
        rayleigh = float(v @ hv)
        if not np.any(hv):
            return float("nan")
        v = hv
    return rayleigh


def solve_prox(
    problem: Problem,
    depth: int,
    lam: float,
    *,
    w0: np.ndarray | None = None,
    tol: float = 1e-8,
    max_iter: int = 20_000,
    accelerated: bool = True,
    polish: bool = True,
    algorithm: str = "auto",
) -> SolveResult:
    r"""Minimise :math:`L_w(w) = L_0(w) + \lambda \sum_j \|w_{G_j}\|_2^{2/D}`.

    ``algorithm="bcd"`` (the default for a :class:`~dgating.problem.GroupedProblem` with the
    squared or logistic loss, dense or sparse ``X``): group block coordinate descent with working
    sets and Anderson acceleration (:mod:`dgating._bcd`), each block step the exact group prox of
    a gradient step with the block's Lipschitz constant; for the logistic loss the blocks step on
    the quadratic model of a proximal Newton iteration (with a line search on :math:`L_w`). If it
    stops short of ``tol`` (budget), the proximal gradient route below continues from its point.

    ``algorithm="fista"`` (any :class:`Problem`): proximal gradient.

    Each step is :math:`w^+ = \mathrm{prox}_{t \lambda P}(y - t \nabla L_0(y))` at the
    extrapolated point :math:`y` (FISTA), with the step :math:`t` found by a line search on the
    quadratic upper model of :math:`L_0` at :math:`y`: each step first tries :math:`1.25\,t`,
    then halves until the model holds. Momentum is dropped whenever the step would increase
    :math:`L_w`, so the objective never increases, also for non-convex :math:`q < 1` (where
    the prox may jump to or from zero). Once the support has been the same for 2 steps, Newton's
    method on that support (where :math:`L_w` is smooth) finishes the job; its result is kept
    only if it lowers :math:`L_w`, and the proximal steps go on until the stationarity of the
    full problem is reached (e.g. when a zero group still violates :math:`\|g_j\| \le \lambda`).

    Parameters
    ----------
    problem : Problem
        Data term and grouping.
    depth : int
        :math:`D \ge 2` (:math:`q = 2/D`).
    lam : float
        :math:`\lambda \ge 0`.
    w0 : ndarray, shape (n_features,), optional
        Starting point (warm start); by default zero for ``D = 2`` (convex: the minimum does not
        depend on the start) and :func:`initial_point` with ``init="ridge"`` for ``D >= 3``
        (the origin is a local minimiser there).
    tol : float, default=1e-8
        Target relative stationarity.
    max_iter : int, default=20000
        Maximum number of proximal steps (``"fista"``) or of coordinate-descent epochs
        (``"bcd"``).
    accelerated : bool, default=True
        Monotone FISTA (momentum restarted whenever it would increase :math:`L_w`).
    polish : bool, default=True
        Newton on the support once it has been stable for 2 iterations (each support at most
        once, and only supports of at most 2000 features).
    algorithm : {"auto", "bcd", "fista"}, default="auto"
        ``"auto"`` is ``"bcd"`` where it applies, else ``"fista"``.

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> import numpy as np
    >>> from dgating.problem import GroupedProblem
    >>> prob = GroupedProblem(np.eye(2), np.array([3.0, 0.1]), np.array([0, 1]))
    >>> res = solve_prox(prob, depth=2, lam=0.2)  # group lasso: w_1 = y_1 - n lam
    >>> np.round(res.w, 6).tolist(), res.converged
    ([2.6, 0.0], True)
    """
    start = time.perf_counter()
    obj = PenalisedObjective(problem, depth, lam)
    tol = check_positive(tol, "tol")
    max_iter = check_positive(max_iter, "max_iter", integer=True)
    check_choice(algorithm, "algorithm", ("auto", "bcd", "fista"))
    use_bcd = algorithm != "fista" and bcd_applicable(problem)
    if algorithm == "bcd" and not use_bcd:
        raise InvalidParameterError(
            "`algorithm` must be 'auto' or 'fista' for this problem (BCD needs a GroupedProblem "
            f"with the squared or logistic loss); got 'bcd' with {type(problem).__name__}."
        )
    p, groups, pen = problem.n_features, problem.groups, obj.penalty
    if w0 is not None:
        w = check_array(w0, "w0", shape=(p,)).copy()
    else:
        w = np.zeros(p) if obj.penalty.q == 1.0 else initial_point(problem, lam)
    it = 0
    if use_bcd:
        w, _, it, message = solve_bcd(
            problem, pen.q, obj.lam, w, tol_abs=tol * obj.scale, max_epochs=max_iter
        )
    f_w, g_w = problem.value_and_grad(w)
    stat = obj.stationarity(w, g_w)
    # BCD done (or stopped on non-finite values); if it ran out of epochs short of tol (badly
    # conditioned blocks, e.g. an intercept beside uncentred features), FISTA with the Newton
    # polish on the support carries on from its point with a budget of its own.
    if use_bcd and (stat <= tol or not np.isfinite(stat) or message.startswith(NON_FINITE)):
        return SolveResult(
            w=w,
            objective=float(f_w + pen.value(w, groups)),
            stationarity=stat,
            converged=stat <= tol,
            iterations=it,
            seconds=time.perf_counter() - start,
            method="prox",
            message=f"bcd: {message}",
        )
    F_w = f_w + pen.value(w, groups)
    curvature = _curvature_estimate(problem, w, g_w)
    step = 1.0 / curvature if np.isfinite(curvature) and curvature > 0 else 1.0
    w_prev, theta = w.copy(), 1.0
    stable, support = 0, obj.support_mask(w)
    polished: set[bytes] = set()  # supports already polished: Newton once per support
    message = f"reached max_iter={max_iter}"
    n_bcd = it
    for it in range(n_bcd + 1, n_bcd + max_iter + 1):
        if obj.stationarity(w, g_w) <= tol:
            message = "stationarity <= tol"
            it -= 1
            break
        theta_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * theta**2)) if accelerated else 1.0
        if theta == 1.0:
            y, f_y, g_y = w, f_w, g_w
        else:
            y = w + ((theta - 1.0) / theta_new) * (w - w_prev)
            f_y, g_y = problem.value_and_grad(y)
        step *= 1.25  # let the step grow back after a backtrack
        for _ in range(_MAX_BACKTRACKS):  # backtracking on the quadratic upper model of L0 at y
            z = pen.prox(y - step * g_y, step, groups)
            d = z - y
            f_z, g_z = problem.value_and_grad(z)
            if f_z <= f_y + g_y @ d + (d @ d) / (2.0 * step) + 1e-12 * abs(f_y):
                break
            step *= 0.5
        else:  # NaN/inf (e.g. overflowing data) or no step small enough: stop, do not loop
            message = "line search failed (non-finite values or no decrease)"
            break
        F_z = f_z + pen.value(z, groups)
        if F_z > F_w and theta > 1.0:  # momentum would increase L_w: restart from w
            theta = 1.0
            w_prev = w
            continue
        w_prev, w, f_w, g_w, F_w, theta = w, z, f_z, g_z, F_z, theta_new
        new_support = obj.support_mask(w)
        stable = stable + 1 if np.array_equal(new_support, support) else 0
        support = new_support
        key = np.packbits(support).tobytes()
        if (
            polish
            and stable >= 2
            and key not in polished
            and 0 < np.count_nonzero(support) <= _MAX_POLISH_FEATURES
            and obj.stationarity(w, g_w) > tol
        ):
            polished.add(key)
            w_pol, _ = _polish_support(obj, w, tol)
            f_pol, g_pol = problem.value_and_grad(w_pol)
            F_pol = f_pol + pen.value(w_pol, groups)
            if F_pol <= F_w:
                w, w_prev, theta, f_w, g_w, F_w = w_pol, w_pol, 1.0, f_pol, g_pol, F_pol
    stat = obj.stationarity(w, g_w)
    return SolveResult(
        w=w,
        objective=float(F_w),
        stationarity=stat,
        converged=stat <= tol,
        iterations=it,
        seconds=time.perf_counter() - start,
        method="prox",
        message=message,
    )


INITS = ("ridge", "random")


def initial_point(
    problem: Problem, lam: float, *, init: str = "ridge", seed: int = 0, init_scale: float = 0.1
) -> np.ndarray:
    r"""The documented starting point shared by both solvers (and the simulations).

    * ``"ridge"``: :math:`w_0 \approx \operatorname{argmin}_w L_0(w) + \frac{\lambda}{2}\|w\|^2`
      (scipy's L-BFGS-B at its default ``ftol``, deterministic; with :math:`\lambda = 0` a tiny
      ridge :math:`10^{-8}` keeps it unique). Only a starting point, so no tighter solve. A dense,
      non-sparse start: for :math:`q < 1` the origin is always a local minimiser of :math:`L_w`, so
      starting there would stop at once.
    * ``"random"``: :math:`w_0 \sim \mathcal N(0, \text{init\_scale}^2 I)` drawn with
      ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    problem : Problem
        Data term and grouping.
    lam : float
        :math:`\lambda \ge 0`, the ridge weight of ``"ridge"``.
    init : {"ridge", "random"}, default="ridge"
        Which start.
    seed : int, default=0
        Seed of ``"random"``.
    init_scale : float, default=0.1
        Standard deviation of ``"random"``.

    Returns
    -------
    ndarray, shape (n_features,)
        :math:`w_0`.
    """
    check_choice(init, "init", INITS)
    lam = check_lam(lam)
    p = problem.n_features
    if init == "random":
        return np.random.default_rng(seed).normal(
            scale=check_positive(init_scale, "init_scale"), size=p
        )
    ridge = max(lam, 1e-8)

    def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
        val, g = problem.value_and_grad(w)
        return val + 0.5 * ridge * float(w @ w), g + ridge * w

    return minimize(
        fun, np.zeros(p), jac=True, method="L-BFGS-B", options={"maxiter": 10_000, "gtol": 1e-12}
    ).x


def solve_gated(
    problem: Problem,
    depth: int,
    lam: float,
    *,
    method: str = "lbfgs",
    params0: GatedParams | None = None,
    w0: np.ndarray | None = None,
    tol: float = 1e-8,
    max_iter: int = 50_000,
    step: float | None = None,
    start: str = "auto",
) -> SolveResult:
    r"""Minimise the smooth gated objective :math:`L(\omega, \Gamma)` and collapse.

    With ``start="prox"`` (what ``"auto"`` picks for ``method="lbfgs"`` without ``params0`` when
    the block coordinate descent of :func:`solve_prox` applies to ``problem``) the support
    and the starting point come from the prox route: :func:`solve_prox` to ``tol / 100`` from
    ``w0``, then its balanced lift (docs/theory.md [T-minima](b): the balanced lift of a local
    minimiser of :math:`L_w` is a local minimiser of :math:`L`), checked and, where needed,
    Newton-polished in the gated space on the support. This keeps the gated route within a small
    factor of the prox route on large supports, where a first-order method in the (badly
    conditioned) gated variables needs thousands of iterations. ``start="lift"`` runs the
    first-order phase from the balanced lift of ``w0`` instead.

    Parameters
    ----------
    problem : Problem
        Data term and grouping.
    depth : int
        :math:`D \ge 2`.
    lam : float
        :math:`\lambda \ge 0`.
    method : {"lbfgs", "gd"}, default="lbfgs"
        scipy's L-BFGS-B, or gradient descent with a fixed ``step``.
    params0 : GatedParams, optional
        Start in the gated space (may be unbalanced).
    w0 : ndarray, shape (n_features,), optional
        Start in weight space, lifted to balanced :math:`(\omega, \Gamma)`; by default
        :func:`initial_point` with ``init="ridge"``. Ignored when ``params0`` is given.
    tol : float, default=1e-8
        Target relative stationarity of :math:`L_w` at the collapsed weights, and target
        relative imbalance.
    max_iter : int, default=50000
        Iteration budget of the first-order phase.
    step : float, optional
        Step of ``"gd"`` (default ``1 / (L0 Lipschitz bound * (1 + max ||w0_j||^2) + 2 lam)``).
    start : {"auto", "prox", "lift"}, default="auto"
        Where the ``"lbfgs"`` route gets its support and starting point (see above); ignored
        for ``"gd"`` and when ``params0`` is given. ``"auto"``: ``"prox"`` where the prox route
        is the fast block coordinate descent (a :class:`~dgating.problem.GroupedProblem`), else
        ``"lift"`` (e.g. a network, where proximal gradient in weight space is slow).

    Returns
    -------
    SolveResult
        With ``params`` (after support detection and polish) and ``max_imbalance``.

    Examples
    --------
    >>> import numpy as np
    >>> from dgating.problem import GroupedProblem
    >>> prob = GroupedProblem(np.eye(2), np.array([3.0, 0.1]), np.array([0, 1]))
    >>> res = solve_gated(prob, depth=2, lam=0.2)
    >>> np.round(res.w, 6).tolist(), res.converged
    ([2.6, 0.0], True)
    """
    t_start = time.perf_counter()
    check_choice(method, "method", ("lbfgs", "gd"))
    check_choice(start, "start", ("auto", "prox", "lift"))
    if start == "auto":
        start = "prox" if bcd_applicable(problem) else "lift"
    tol = check_positive(tol, "tol")
    max_iter = check_positive(max_iter, "max_iter", integer=True)
    gated = GatedObjective(problem, depth, lam)
    gating, obj = gated.gating, gated.penalised_objective
    if params0 is None and method == "lbfgs" and start == "prox":
        prox = solve_prox(problem, depth, lam, w0=w0, tol=1e-2 * tol)
        support = gating.groups.norms(prox.w) > 0  # exact zeros: the prox route's support
        params, n_newton = _detect_support_and_polish(gated, gating.lift(prox.w), tol, support)
        return _gated_result(
            gated,
            params,
            prox.iterations + n_newton,
            t_start,
            tol,
            f"prox start ({prox.message}), Newton polish {n_newton} steps",
        )
    if params0 is None:
        w0 = (
            initial_point(problem, lam)
            if w0 is None
            else check_array(w0, "w0", shape=(problem.n_features,))
        )
        params = gating.lift(w0)
    else:
        params = gating.check(params0)
    z = gating.pack(params)
    # First-order phase: drive the gated gradient well below the target so that the support is
    # unambiguous and the Newton polish starts in its quadratic region.
    gtol = 1e-3 * tol * obj.scale
    if method == "lbfgs":
        res = minimize(
            gated.fun_and_jac,
            z,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "maxcor": 30, "ftol": 1e-16, "gtol": gtol},
        )
        z, n_iter = res.x, int(res.nit)
    else:
        lip = problem.lipschitz()
        if step is None:
            scale = 1.0 + float(np.max(gating.groups.sq_norms(params.omega), initial=0.0))
            step = 1.0 / ((lip if np.isfinite(lip) else 1.0) * scale * depth + 2.0 * lam)
        step = check_positive(step, "step")
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            g = gated.fun_and_jac(z)[1]
            if np.max(np.abs(g)) <= gtol:
                break
            z = z - step * g
    params, n_newton = _detect_support_and_polish(gated, gating.unpack(z), tol)
    return _gated_result(
        gated,
        params,
        n_iter + n_newton,
        t_start,
        tol,
        f"{method} phase {n_iter} iterations, Newton polish {n_newton} steps",
    )


def _gated_result(
    gated: GatedObjective,
    params: GatedParams,
    iterations: int,
    t_start: float,
    tol: float,
    message: str,
) -> SolveResult:
    """The :class:`SolveResult` of :func:`solve_gated` at the polished ``params``."""
    gating, obj = gated.gating, gated.penalised_objective
    w = gating.collapse(params)
    stat = obj.stationarity(w)
    imb = gating.relative_imbalance(params)
    return SolveResult(
        w=w,
        objective=obj.value(w),
        stationarity=stat,
        converged=bool(stat <= tol and imb <= tol),
        iterations=iterations,
        seconds=time.perf_counter() - t_start,
        method="gated",
        params=params,
        max_imbalance=imb,
        message=message,
    )


def _detect_support_and_polish(
    gated: GatedObjective, params: GatedParams, tol: float, kept: np.ndarray | None = None
) -> tuple[GatedParams, int]:
    """Zero the groups that one prox step on :math:`L_w` zeroes (or the groups not in ``kept``,
    a known support), then Newton-polish :math:`L`.

    Zeroing a whole group :math:`(\\omega_j, \\gamma_j) = 0` keeps a stationary point of :math:`L`
    stationary (all partial derivatives of that group vanish there), so the polish stays within
    the same basin. The polish works on the gated objective of the problem restricted to the
    surviving groups (:func:`_restrict`), with the explicit :meth:`GatedObjective.hessian`.
    """
    gating, obj = gated.gating, gated.penalised_objective
    groups, problem = gating.groups, gated.problem
    w = gating.collapse(params)
    if kept is None:
        kept = _prox_step_support(problem, obj, w)
    if obj.penalty.q < 1.0:
        # For q < 1 the prox test depends on the step: a long step may jump a group that the
        # first-order phase has driven to (numerically) zero back on, although zero is a local
        # minimiser along every group. Such groups stay zero (e.g. norm 1e-27 next to O(1)).
        norms = groups.norms(w)
        kept &= norms > 1e-12 * max(1.0, float(norms.max(initial=0.0)))
    idx = np.flatnonzero(groups.expand(kept.astype(float), fill=1.0) > 0)
    if idx.size == 0:  # every group is zero: w = 0, stationary and balanced
        return GatedParams(np.zeros_like(params.omega), np.zeros_like(params.gates)), 0
    sub = GatedObjective(_restrict(problem, idx), gating.depth, gated.lam)
    sub_gating, sub_obj = sub.gating, sub.penalised_objective

    def value(x: np.ndarray) -> float:
        return sub.value(sub_gating.unpack(x))

    def grad_hess(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        params = sub_gating.unpack(x)
        return sub_gating.pack(sub.grad(params)), sub.hessian(params)

    def done(x: np.ndarray) -> bool:
        # Residuals on the support, relative to the scale of the full problem.
        params = sub_gating.unpack(x)
        stat = float(sub_obj.residuals(sub_gating.collapse(params)).max()) / obj.scale
        return stat <= 1e-2 * tol and sub_gating.relative_imbalance(params) <= 1e-2 * tol

    x0 = sub_gating.pack(GatedParams(params.omega[idx], params.gates[kept]))
    x, n = _damped_newton(value, grad_hess, x0, done)
    polished = sub_gating.unpack(x)
    omega, gates = np.zeros_like(params.omega), np.zeros_like(params.gates)
    omega[idx], gates[kept] = polished.omega, polished.gates
    return GatedParams(omega, gates), n


def _prox_step_support(problem: Problem, obj: PenalisedObjective, w: np.ndarray) -> np.ndarray:
    """Groups that one proximal gradient step of :math:`L_w` from ``w`` leaves non-zero.

    The step is 1 / (largest curvature of :math:`L_0`), estimated by power iteration (the exact
    spectral norm costs an SVD).
    """
    g = problem.grad(w)
    curvature = _curvature_estimate(problem, w, g, n_iter=20)
    step = 1.0 / curvature if np.isfinite(curvature) and curvature > 0 else 1.0
    return problem.groups.norms(obj.penalty.prox(w - step * g, step, problem.groups)) > 0


METHODS: dict[str, Callable[..., SolveResult]] = {"gated": solve_gated, "prox": solve_prox}


def solve(
    problem: Problem, depth: int, lam: float, *, method: str = "prox", **kwargs
) -> SolveResult:
    r"""Dispatch to :func:`solve_prox` (``method="prox"``) or :func:`solve_gated` (``"gated"``).

    Parameters
    ----------
    problem : Problem
        Data term and grouping.
    depth : int
        :math:`D \ge 2`.
    lam : float
        :math:`\lambda \ge 0`.
    method : {"prox", "gated"}, default="prox"
        The route.
    **kwargs
        Passed to the solver.

    Returns
    -------
    SolveResult
    """
    return METHODS[check_choice(method, "method", METHODS)](problem, depth, lam, **kwargs)
