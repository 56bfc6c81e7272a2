r"""Solvers for the non-smooth problem :math:`\min_w L_w(w)` and the smooth gated problem
:math:`\min_{\omega,\Gamma} L(\omega, \Gamma)`.

* :func:`solve_prox`: proximal gradient on :math:`L_w` with the exact group prox
  (:func:`~dgating.penalties.scalar_prox`), backtracking line search and a monotone accelerated
  variant (momentum is dropped whenever the accelerated step would increase :math:`L_w`, so the
  objective never increases, also for non-convex :math:`q < 1`). Once the support has settled, a
  damped Newton step on the support (where :math:`L_w` is smooth) finishes the job.
* :func:`solve_gated`: L-BFGS (scipy) or plain gradient descent on :math:`L`; vanishing groups
  decay but never reach exact zero, so one proximal step on :math:`L_w` at the collapsed weights
  decides which groups are zero, and a damped Newton polish of :math:`L` on the surviving
  coordinates ends balanced to machine precision.

Both stop on the relative first-order stationarity of :math:`L_w`
(:meth:`~dgating.objectives.PenalisedObjective.stationarity`) and return a :class:`SolveResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from ._validation import check_array, check_choice, check_lam, check_positive
from .gating import GatedParams
from .groups import Groups
from .objectives import GatedObjective, PenalisedObjective
from .problem import Problem

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


def _damped_newton(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
    x: np.ndarray,
    done: Callable[[np.ndarray], bool],
    admissible: Callable[[np.ndarray], bool] = lambda x: True,
    max_iter: int = 50,
) -> tuple[np.ndarray, int]:
    """Newton's method with an eigenvalue-modified Hessian and Armijo backtracking.

    Stops when ``done(x)`` holds, when no step decreases ``fun``, or after ``max_iter`` steps.
    Returns the last accepted point and the number of accepted steps.
    """
    for it in range(max_iter):
        if done(x):
            return x, it
        f, g, H = fun(x)
        evals, evecs = np.linalg.eigh(H)
        # Modified Newton: |eigenvalues|, floored, so the step is always a descent direction.
        floor = 1e-12 * max(1.0, float(np.abs(evals).max(initial=0.0)))
        step = -evecs @ ((evecs.T @ g) / np.maximum(np.abs(evals), floor))
        alpha, slope = 1.0, float(g @ step)
        while alpha > 1e-10:
            x_new = x + alpha * step
            if admissible(x_new) and fun(x_new)[0] <= f + 1e-4 * alpha * slope:
                break
            alpha *= 0.5
        else:
            return x, it
        if np.array_equal(x_new, x):
            return x, it
        x = x_new
    return x, max_iter


def _polish_support(obj: PenalisedObjective, w: np.ndarray, tol: float) -> tuple[np.ndarray, int]:
    """Newton on the support of ``w``, where :math:`L_w` is smooth; zero groups stay zero."""
    idx = np.flatnonzero(obj.support_mask(w))
    norms0 = obj.groups.norms(w)

    def embed(x: np.ndarray) -> np.ndarray:
        full = np.zeros_like(w)
        full[idx] = x
        return full

    def fun(x: np.ndarray):
        full = embed(x)
        H, _ = obj.reduced_hessian(full)
        return obj.value(full), obj.grad_on_support(full)[idx], H

    def admissible(x: np.ndarray) -> bool:
        # A group may not shrink towards zero: the smooth model is only valid on the support.
        norms = obj.groups.norms(embed(x))
        keep = norms0 > 0
        return bool(np.all(norms[keep] > 1e-3 * norms0[keep]))

    x, n = _damped_newton(fun, w[idx], lambda x: obj.stationarity(embed(x)) <= tol, admissible)
    return embed(x), n


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
) -> SolveResult:
    r"""Minimise :math:`L_w(w) = L_0(w) + \lambda \sum_j \|w_{G_j}\|_2^{2/D}` by proximal gradient.

    Parameters
    ----------
    problem : Problem
        Data term and grouping.
    depth : int
        :math:`D \ge 2` (:math:`q = 2/D`).
    lam : float
        :math:`\lambda \ge 0`.
    w0 : ndarray, shape (n_features,), optional
        Starting point; by default :func:`initial_point` with ``init="ridge"``.
    tol : float, default=1e-8
        Target relative stationarity.
    max_iter : int, default=20000
        Maximum number of proximal steps.
    accelerated : bool, default=True
        Monotone FISTA (momentum restarted whenever it would increase :math:`L_w`).
    polish : bool, default=True
        Newton on the support once it has been stable for 10 iterations.

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> import numpy as np
    >>> from dgating.problem import GroupedProblem
    >>> prob = GroupedProblem(np.eye(2), np.array([3.0, 0.1]), np.array([0, 1]))
    >>> res = solve_prox(prob, depth=2, lam=0.2)  # group lasso: soft thresholding of y/n
    >>> np.round(res.w, 6).tolist(), res.converged
    ([1.3, 0.0], True)
    """
    start = time.perf_counter()
    obj = PenalisedObjective(problem, depth, lam)
    tol = check_positive(tol, "tol")
    max_iter = check_positive(max_iter, "max_iter", integer=True)
    p, groups, pen = problem.n_features, problem.groups, obj.penalty
    w = initial_point(problem, lam) if w0 is None else check_array(w0, "w0", shape=(p,)).copy()
    lip = problem.lipschitz()
    step = 1.0 / lip if np.isfinite(lip) and lip > 0 else 1.0
    f_w, g_w = problem.value_and_grad(w)
    F_w = f_w + pen.value(w, groups)
    w_prev, theta = w.copy(), 1.0
    stable, support = 0, obj.support_mask(w)
    message = f"reached max_iter={max_iter}"
    it = 0
    for it in range(1, max_iter + 1):
        if obj.stationarity(w, g_w) <= tol:
            message = "stationarity <= tol"
            it -= 1
            break
        theta_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * theta**2)) if accelerated else 1.0
        y = w + ((theta - 1.0) / theta_new) * (w - w_prev)
        f_y, g_y = (f_w, g_w) if y is w or theta == 1.0 else problem.value_and_grad(y)
        while True:  # backtracking on the quadratic upper model of L0 at y
            z = pen.prox(y - step * g_y, step, groups)
            d = z - y
            f_z, g_z = problem.value_and_grad(z)
            if f_z <= f_y + g_y @ d + (d @ d) / (2.0 * step) + 1e-12 * abs(f_y):
                break
            step *= 0.5
        F_z = f_z + pen.value(z, groups)
        if F_z > F_w and theta > 1.0:  # momentum would increase L_w: restart from w
            theta = 1.0
            w_prev = w
            continue
        w_prev, w, f_w, g_w, F_w, theta = w, z, f_z, g_z, F_z, theta_new
        new_support = obj.support_mask(w)
        stable = stable + 1 if np.array_equal(new_support, support) else 0
        support = new_support
        if polish and stable == 10:
            w_pol, _ = _polish_support(obj, w, tol)
            if obj.value(w_pol) <= F_w:
                w, w_prev, theta = w_pol, w_pol, 1.0
                f_w, g_w = problem.value_and_grad(w)
                F_w = f_w + pen.value(w, groups)
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

    * ``"ridge"``: :math:`w_0 = \operatorname{argmin}_w L_0(w) + \frac{\lambda}{2}\|w\|^2`
      (L-BFGS; with :math:`\lambda = 0` a tiny ridge :math:`10^{-8}` keeps it unique). A dense,
      non-sparse start: for :math:`q < 1` the origin is always a local minimiser of :math:`L_w`, so
      starting there would stop at once.
    * ``"random"``: :math:`w_0 \sim \mathcal N(0, \text{init\_scale}^2 I)` drawn with
      ``numpy.random.default_rng(seed)``.
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
) -> SolveResult:
    r"""Minimise the smooth gated objective :math:`L(\omega, \Gamma)` and collapse.

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
    ([1.3, 0.0], True)
    """
    start = time.perf_counter()
    check_choice(method, "method", ("lbfgs", "gd"))
    tol = check_positive(tol, "tol")
    max_iter = check_positive(max_iter, "max_iter", integer=True)
    gated = GatedObjective(problem, depth, lam)
    gating, obj = gated.gating, gated.penalised_objective
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
    params = gating.unpack(z)
    params, n_newton = _detect_support_and_polish(gated, params, tol)
    w = gating.collapse(params)
    stat = obj.stationarity(w)
    imb = gating.relative_imbalance(params)
    return SolveResult(
        w=w,
        objective=obj.value(w),
        stationarity=stat,
        converged=bool(stat <= tol and imb <= tol),
        iterations=n_iter + n_newton,
        seconds=time.perf_counter() - start,
        method="gated",
        params=params,
        max_imbalance=imb,
        message=f"{method} phase {n_iter} iterations, Newton polish {n_newton} steps",
    )


def _detect_support_and_polish(
    gated: GatedObjective, params: GatedParams, tol: float
) -> tuple[GatedParams, int]:
    """Zero the groups that one prox step on :math:`L_w` zeroes, then Newton-polish :math:`L`.

    Zeroing a whole group :math:`(\\omega_j, \\gamma_j) = 0` keeps a stationary point of :math:`L`
    stationary (all partial derivatives of that group vanish there), so the polish stays within
    the same basin.
    """
    gating, obj = gated.gating, gated.penalised_objective
    groups, problem = gating.groups, gated.problem
    w = gating.collapse(params)
    lip = problem.lipschitz()
    step = 1.0 / lip if np.isfinite(lip) and lip > 0 else 1.0
    kept = groups.norms(obj.penalty.prox(w - step * problem.grad(w), step, groups)) > 0
    omega = params.omega * groups.expand(kept.astype(float))
    gates = params.gates * kept[:, None]
    params = GatedParams(omega, gates)
    keep_params = GatedParams(
        groups.expand(kept.astype(float)), np.repeat(kept[:, None], gating.n_gates, axis=1)
    )
    free_idx = np.flatnonzero(gating.pack(keep_params) > 0)
    z_full = gating.pack(params)

    def embed(x: np.ndarray) -> np.ndarray:
        out = z_full.copy()
        out[free_idx] = x
        return out

    def fun(x: np.ndarray):
        p = gating.unpack(embed(x))
        val, grad = gated.value_and_grad(p)
        H = gated.hessian(p, free_idx)
        return val, gating.pack(grad)[free_idx], H

    def done(x: np.ndarray) -> bool:
        p = gating.unpack(embed(x))
        return obj.stationarity(gating.collapse(p)) <= 1e-2 * tol and (
            gating.relative_imbalance(p) <= 1e-2 * tol
        )

    x, n = _damped_newton(fun, z_full[free_idx], done)
    return gating.unpack(embed(x)), n


METHODS: dict[str, Callable[..., SolveResult]] = {"gated": solve_gated, "prox": solve_prox}


def solve(
    problem: Problem, depth: int, lam: float, *, method: str = "prox", **kwargs
) -> SolveResult:
    """Dispatch to :func:`solve_prox` (``method="prox"``) or :func:`solve_gated` (``"gated"``)."""
    return METHODS[check_choice(method, "method", METHODS)](problem, depth, lam, **kwargs)
