r"""Checks of the correspondence between local minima of :math:`L` and of :math:`L_w`.

Every check returns a :class:`~dgating.proofs_check.result.CheckResult` and never asserts.
Relative quantities use the gradient scale :math:`s = \max(\lambda, \max_j \|\nabla_j L_0(0)\|)`
of :class:`~dgating.objectives.PenalisedObjective` (``scale``) and the round-off allowance of the
perturbation tests is :math:`10^{-13}(1 + |f|)` for an objective value :math:`f`.

Balancedness (docs/theory.md [T-balance]). For every point, exactly,

.. math::
    \langle \omega_j, \partial_{\omega_j} L\rangle - \gamma_{j,d}\, \partial_{\gamma_{j,d}} L
    = \tfrac{2\lambda}{D} \Delta_{j,d},

so at a stationary point with :math:`\lambda > 0` every :math:`\Delta_{j,d}` vanishes.

Direction (a) (docs/theory.md [T-minima]): a local minimiser of :math:`L` collapses to a local
minimiser of :math:`L_w`; :func:`check_penalised_minimiser` certifies the collapsed point
(first-order residual, zero-group condition, reduced Hessian, perturbation test). Direction (b): the
balanced lift of a local minimiser of :math:`L_w` is a local minimiser of :math:`L`;
:func:`check_gated_minimiser` checks the gradient, the Hessian (dense or Lanczos) and a perturbation
test of :math:`L`. At a lifted point with a zero group the gated Hessian block of that group is
:math:`\frac{2\lambda}{D} I` for :math:`D \ge 3` and has eigenvalues :math:`\lambda \pm \|g_j\|`
for :math:`D = 2` (docs/theory.md [T-zero-groups]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..certificates import certify
from ..gating import GatedParams
from ..objectives import GatedObjective, PenalisedObjective
from ..problem import Problem
from .result import CheckResult

__all__ = [
    "RADII",
    "ROUNDOFF",
    "check_balanced",
    "check_gated_gradient",
    "check_gated_hessian",
    "check_gated_minimiser",
    "check_penalised_certificate",
    "check_penalised_minimiser",
    "check_values",
    "gated_hessian_extremes",
    "perturbation_test_gated",
    "perturbation_test_penalised",
]

#: Radii of the perturbation tests (unit directions).
RADII = np.logspace(-6, -2, 9)
#: Relative round-off allowance of the perturbation tests and of value comparisons.
ROUNDOFF = 1e-13
#: Default tolerances (relative): stationarity, Hessian, balancedness.
STAT_TOL, HESS_TOL, BAL_TOL = 1e-7, 1e-8, 1e-8
#: Largest number of gated parameters for which the dense Hessian is formed.
DENSE_MAX = 300


def _unit_rows(d: np.ndarray) -> np.ndarray:
    d = np.atleast_2d(np.asarray(d, dtype=float))
    norms = np.linalg.norm(d, axis=1)
    keep = norms > 0
    return d[keep] / norms[keep, None]


# --------------------------------------------------------------------------------------------
# Balancedness
# --------------------------------------------------------------------------------------------
def check_balanced(
    objective: GatedObjective,
    params: GatedParams,
    *,
    tol: float = BAL_TOL,
    identity_tol: float = 1e-10,
    name: str = "balanced",
) -> CheckResult:
    r"""Balancedness of ``params`` and the identity behind it.

    Measures the relative imbalance :math:`\max_{j,d}|\Delta_{j,d}|/\max(1, \|\omega_j\|^2)`
    (``value``, must be ``<= tol``) and the relative error of

    .. math::
        \langle \omega_j, \partial_{\omega_j} L\rangle - \gamma_{j,d}\,\partial_{\gamma_{j,d}} L
        - \tfrac{2\lambda}{D}\Delta_{j,d}

    (must be ``<= identity_tol``). ``details["gradient_bound"]`` is the bound
    :math:`\frac{D}{2\lambda}(|\langle\omega_j,\partial_{\omega_j}L\rangle| +
    |\gamma_{j,d}\partial_{\gamma_{j,d}}L|)` on :math:`|\Delta_{j,d}|` that the identity gives
    from the gradient alone (relative, like ``value``).

    Examples
    --------
    >>> import numpy as np
    >>> from dgating import GatedObjective, GroupedProblem
    >>> obj = GatedObjective(GroupedProblem(np.eye(2), np.ones(2), np.array([0, 1])), 3, 0.1)
    >>> check_balanced(obj, obj.gating.lift(np.array([0.5, 0.0]))).passed
    True
    >>> check_balanced(obj, GatedParams(np.array([1.0, 0.0]), np.ones((2, 2)))).passed
    False
    """
    gating, groups = objective.gating, objective.gating.groups
    grad = objective.grad(params)
    imb = gating.imbalance(params)
    sq = groups.sq_norms(params.omega)
    scale = np.maximum(1.0, sq)[:, None]
    om_term = groups.group_sums(params.omega * grad.omega)[:, None]
    ga_term = params.gates * grad.gates
    wd = objective.weight_decay
    lhs = om_term - ga_term
    rhs = wd * imb
    size = np.abs(om_term) + np.abs(ga_term) + wd * (sq[:, None] + params.gates**2)
    identity_err = float(np.max(np.abs(lhs - rhs) / np.maximum(size, 1e-300), initial=0.0))
    rel_imb = float(np.max(np.abs(imb) / scale, initial=0.0))
    bound = (
        float(np.max((np.abs(om_term) + np.abs(ga_term)) / (wd * scale), initial=0.0))
        if wd > 0
        else float("inf")
    )
    violation = rel_imb if identity_err <= identity_tol else np.inf
    return CheckResult.from_violation(
        name,
        violation,
        tol,
        value=rel_imb,
        identity_error=identity_err,
        identity_tol=identity_tol,
        gradient_bound=bound,
    )


# --------------------------------------------------------------------------------------------
# The non-smooth side: certificate and perturbation test of L_w
# --------------------------------------------------------------------------------------------
def check_penalised_certificate(
    problem: Problem,
    depth: int,
    lam: float,
    w: np.ndarray,
    *,
    tol: float = STAT_TOL,
    hess_tol: float = HESS_TOL,
    prefix: str = "a.",
) -> list[CheckResult]:
    r"""The three parts of :func:`dgating.certificates.certify` as separate results.

    ``Lw_stationarity``: relative first-order residual of :math:`L_w` (``<= tol``).
    ``Lw_zero_groups``: :math:`\max_{j: w_j=0}(\|g_j\| - \lambda)/s` for :math:`D = 2` (``<= tol``;
    ``nan`` and ``details["void"]`` when there is no zero group or :math:`D \ge 3`, where the
    condition is void).
    ``Lw_hessian``: smallest relative eigenvalue of the reduced Hessian (``>= -hess_tol``).
    """
    cert = certify(problem, depth, lam, w, tol=tol, hess_tol=hess_tol)
    support = cert.support
    zero_viol = -cert.zero_group_margin
    return [
        CheckResult.from_violation(
            prefix + "Lw_stationarity", cert.stationarity, tol, support=support
        ),
        CheckResult.from_violation(
            prefix + "Lw_zero_groups",
            zero_viol if np.isfinite(zero_viol) else 0.0,
            tol,
            value=zero_viol if np.isfinite(zero_viol) else float("nan"),
            n_zero_groups=problem.n_groups - len(support),
            void=not np.isfinite(zero_viol),
        ),
        CheckResult.from_violation(
            prefix + "Lw_hessian", -cert.min_eigenvalue, hess_tol, value=cert.min_eigenvalue
        ),
    ]


def _penalised_directions(
    obj: PenalisedObjective, w: np.ndarray, rng: np.random.Generator, n_random: int
) -> tuple[np.ndarray, list[str]]:
    groups = obj.groups
    p = w.size
    support = obj.support_mask(w)
    norms = groups.norms(w)
    g = obj.problem.grad(w)
    dirs, kinds = [], []

    def add(d: np.ndarray, kind: str) -> None:
        if np.linalg.norm(d) > 0:
            dirs.append(d / np.linalg.norm(d))
            kinds.append(kind)

    for d in rng.normal(size=(n_random, p)):  # dense: switches every zero group on
        add(d, "dense")
    for d in rng.normal(size=(n_random // 2, p)) * support:
        add(d, "support")
    add(-obj.grad_on_support(w), "descent_on_support")
    for j in range(groups.n_groups):
        idx = groups.members(j)
        d = np.zeros(p)
        if norms[j] == 0:
            # Switch group j on along its steepest-descent direction -g_j (the D = 2 test) and
            # along a random direction.
            if np.linalg.norm(g[idx]) > 0:
                d[idx] = -g[idx]
                add(d.copy(), "switch_on_descent")
            d[idx] = rng.normal(size=idx.size)
            add(d, "switch_on_random")
        else:
            d[idx] = w[idx]  # radial: along the concave profile r^q
            add(d.copy(), "radial_out")
            add(-d, "radial_in")
    if support.any():
        H, idx = obj.reduced_hessian(w)
        _, vecs = np.linalg.eigh(H)
        d = np.zeros(p)
        d[idx] = vecs[:, 0]
        add(d.copy(), "min_eigvec")
        add(-d, "min_eigvec")
    return np.array(dirs).reshape(-1, p), kinds


def perturbation_test_penalised(
    problem: Problem,
    depth: int,
    lam: float,
    w: np.ndarray,
    *,
    seed: int = 0,
    n_random: int = 48,
    radii: np.ndarray = RADII,
    rel_allowance: float = ROUNDOFF,
    name: str = "a.Lw_perturbation",
) -> CheckResult:
    r"""No decrease of :math:`L_w` around ``w``: :math:`L_w(w + r d) \ge L_w(w) - \epsilon`.

    Directions ``d`` (unit norm): ``n_random`` dense Gaussian ones (they switch every zero group
    on), ``n_random // 2`` on the support, the negative gradient on the support, for each zero
    group its steepest-descent direction :math:`-g_j` and a random one inside the group, for each
    non-zero group the two radial directions, and the lowest eigenvector of the reduced Hessian.
    Radii ``radii`` (default :math:`10^{-6} .. 10^{-2}`). Allowance
    :math:`\epsilon = 10^{-13}(1 + |L_w(w)|)`: ``value`` is the largest decrease divided by
    :math:`1 + |L_w(w)|` (negative: the smallest increase).
    """
    obj = PenalisedObjective(problem, depth, lam)
    rng = np.random.default_rng(seed)
    dirs, kinds = _penalised_directions(obj, w, rng, n_random)
    return _perturbation_result(name, obj.value, w, dirs, kinds, radii, rel_allowance)


def _perturbation_result(
    name: str,
    value: Callable[[np.ndarray], float],
    x0: np.ndarray,
    dirs: Sequence[np.ndarray],
    kinds: Sequence[str],
    radii: np.ndarray,
    rel_allowance: float,
) -> CheckResult:
    """Largest relative decrease ``(f(x0) - f(x0 + r d)) / (1 + |f(x0)|)`` over directions and
    radii, as a :class:`CheckResult` with the worst direction and radius in its details."""
    f0 = value(x0)
    drops = np.array([[f0 - value(x0 + r * d) for r in radii] for d in dirs])
    rel = drops / (1.0 + abs(f0))
    k, i = np.unravel_index(np.argmax(rel), rel.shape)
    return CheckResult.from_violation(
        name,
        float(rel[k, i]),
        rel_allowance,
        n_directions=len(dirs),
        radii=[float(radii[0]), float(radii[-1]), len(radii)],
        worst_direction=kinds[k],
        worst_radius=float(radii[i]),
        objective=f0,
    )


def check_penalised_minimiser(
    problem: Problem,
    depth: int,
    lam: float,
    w: np.ndarray,
    *,
    seed: int = 0,
    n_random: int = 48,
    prefix: str = "a.",
) -> list[CheckResult]:
    r"""Is ``w`` a local minimiser of :math:`L_w`? Certificate plus perturbation test.

    Parameters
    ----------
    problem : Problem
        Data term :math:`L_0` and grouping.
    depth : int
        :math:`D`, :math:`q = 2/D`.
    lam : float
        :math:`\lambda`.
    w : ndarray, shape (n_features,)
        Candidate (e.g. the collapsed minimiser of the smooth solver: direction (a)).
    seed : int, default=0
        Seed of the random perturbation directions.
    n_random : int, default=48
        Number of dense random directions (half as many on the support).
    prefix : str, default="a."
        Prefix of the result names.

    Returns
    -------
    list of CheckResult
        ``Lw_stationarity``, ``Lw_zero_groups``, ``Lw_hessian`` (see
        :func:`check_penalised_certificate`) and ``Lw_perturbation``
        (:func:`perturbation_test_penalised`).
    """
    return check_penalised_certificate(problem, depth, lam, w, prefix=prefix) + [
        perturbation_test_penalised(
            problem, depth, lam, w, seed=seed, n_random=n_random, name=prefix + "Lw_perturbation"
        )
    ]


# --------------------------------------------------------------------------------------------
# The smooth side: gradient, Hessian and perturbation test of L
# --------------------------------------------------------------------------------------------
def check_gated_gradient(
    objective: GatedObjective,
    params: GatedParams,
    *,
    tol: float = STAT_TOL,
    name: str = "b.L_gradient",
) -> CheckResult:
    r"""Stationarity of :math:`L`: :math:`\|\nabla L(\omega,\Gamma)\|_\infty / s \le` ``tol``."""
    grad = objective.gating.pack(objective.grad(params))
    scale = objective.penalised_objective.scale
    return CheckResult.from_violation(name, float(np.max(np.abs(grad), initial=0.0)) / scale, tol)


def gated_hessian_extremes(
    objective: GatedObjective, params: GatedParams, *, dense_max: int = DENSE_MAX
) -> tuple[float, float, np.ndarray, str]:
    r"""Smallest and largest-magnitude eigenvalues of :math:`\nabla^2 L` and the lowest
    eigenvector (packed coordinates).

    Dense (:meth:`~dgating.objectives.GatedObjective.hessian`, ``numpy.linalg.eigh``) up to
    ``dense_max`` parameters, otherwise Lanczos (``scipy.sparse.linalg.eigsh``) on a
    ``LinearOperator`` built from :meth:`~dgating.objectives.GatedObjective.hvp`.

    Returns
    -------
    min_eig, max_abs_eig : float
    vec : ndarray, shape (n_params,)
    method : {"dense", "lanczos"}
    """
    gating = objective.gating
    n = gating.n_params
    if n <= dense_max:
        evals, evecs = np.linalg.eigh(objective.hessian(params))
        return float(evals[0]), float(np.abs(evals).max()), evecs[:, 0], "dense"
    from scipy.sparse.linalg import LinearOperator, eigsh

    def matvec(v: np.ndarray) -> np.ndarray:
        return gating.pack(objective.hvp(params, gating.unpack(np.ravel(v))))

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).normal(size=n)
    top = eigsh(op, k=1, which="LM", tol=1e-8, v0=v0, return_eigenvectors=False)
    big = float(np.abs(top).max())
    # Lowest eigenvalue of H via the largest of (big I - H), which Lanczos finds quickly.
    shifted = LinearOperator((n, n), matvec=lambda v: big * np.ravel(v) - matvec(v), dtype=float)
    vals, vecs = eigsh(shifted, k=1, which="LA", tol=1e-12, v0=v0, maxiter=50 * n)
    return big - float(vals[0]), big, vecs[:, 0], "lanczos"


def check_gated_hessian(
    objective: GatedObjective,
    params: GatedParams,
    *,
    hess_tol: float = HESS_TOL,
    dense_max: int = DENSE_MAX,
    name: str = "b.L_hessian",
) -> CheckResult:
    r"""Positive semidefiniteness of :math:`\nabla^2 L`: smallest eigenvalue divided by the
    largest absolute one (``value``) must be ``>= -hess_tol``."""
    return _gated_hessian_check(objective, params, hess_tol, dense_max, name)[0]


def _gated_hessian_check(
    objective: GatedObjective, params: GatedParams, hess_tol: float, dense_max: int, name: str
) -> tuple[CheckResult, np.ndarray | None]:
    """:func:`check_gated_hessian` and the lowest eigenvector (for the perturbation test)."""
    lo, big, vec, method = gated_hessian_extremes(objective, params, dense_max=dense_max)
    rel = lo / max(big, np.finfo(float).tiny)
    result = CheckResult.from_violation(
        name, -rel, hess_tol, value=rel, min_eigenvalue=lo, max_abs_eigenvalue=big, method=method
    )
    return result, vec


def perturbation_test_gated(
    objective: GatedObjective,
    params: GatedParams,
    *,
    seed: int = 0,
    n_random: int = 48,
    radii: np.ndarray = RADII,
    rel_allowance: float = ROUNDOFF,
    eigvec: np.ndarray | None = None,
    name: str = "b.L_perturbation",
) -> CheckResult:
    r"""No decrease of :math:`L` around ``params`` (packed coordinates, unit directions).

    Directions: ``n_random`` dense Gaussian ones, the negative gradient, for each zero group a
    random direction in its :math:`(\omega_j, \gamma_j)` block and the two "switch-on" directions
    :math:`(\mp g_j/\|g_j\|, 1, \dots, 1)` (the negative-curvature directions when :math:`D = 2`
    and :math:`\|g_j\| > \lambda`), for each non-zero group the rescaling direction
    :math:`(\omega_j, -\gamma_{j,1})` that leaves the balanced set, and ``eigvec`` (e.g. the
    lowest Hessian eigenvector) with both signs. Same allowance and ``value`` as
    :func:`perturbation_test_penalised`.
    """
    gating, groups = objective.gating, objective.gating.groups
    rng = np.random.default_rng(seed)
    z0 = gating.pack(params)
    n, p = z0.size, groups.n_features
    g_w = objective.problem.grad(gating.collapse(params))
    norms = groups.norms(gating.collapse(params))
    dirs, kinds = [], []

    def add(d: np.ndarray, kind: str) -> None:
        if np.linalg.norm(d) > 0:
            dirs.append(d / np.linalg.norm(d))
            kinds.append(kind)

    for d in rng.normal(size=(n_random, n)):
        add(d, "dense")
    add(-gating.pack(objective.grad(params)), "descent")
    gate_pos = p + np.arange(groups.n_groups * gating.n_gates).reshape(-1, gating.n_gates)
    for j in range(groups.n_groups):
        idx = groups.members(j)
        d = np.zeros(n)
        if norms[j] == 0:
            d[idx] = rng.normal(size=idx.size)
            d[gate_pos[j]] = rng.normal(size=gating.n_gates)
            add(d.copy(), "zero_group_random")
            gn = np.linalg.norm(g_w[idx])
            if gn > 0:
                for sign in (-1.0, 1.0):
                    d = np.zeros(n)
                    d[idx] = sign * g_w[idx] / gn
                    d[gate_pos[j]] = -sign
                    add(d, "switch_on")
        else:
            d[idx] = params.omega[idx]
            d[gate_pos[j][0]] = -params.gates[j, 0]
            add(d, "rescale")
    if eigvec is not None:
        add(np.asarray(eigvec, dtype=float), "min_eigvec")
        add(-np.asarray(eigvec, dtype=float), "min_eigvec")
    return _perturbation_result(
        name, lambda z: objective.value(gating.unpack(z)), z0, dirs, kinds, radii, rel_allowance
    )


def check_gated_minimiser(
    objective: GatedObjective,
    params: GatedParams,
    *,
    seed: int = 0,
    n_random: int = 48,
    dense_max: int = DENSE_MAX,
    prefix: str = "b.",
) -> list[CheckResult]:
    r"""Is ``params`` a local minimiser of :math:`L`? Gradient, Hessian, perturbation test and
    balancedness.

    Parameters
    ----------
    objective : GatedObjective
        :math:`L` for the problem, depth and :math:`\lambda`.
    params : GatedParams
        Candidate (e.g. the balanced lift of a prox minimiser: direction (b)).
    seed : int, default=0
        Seed of the random perturbation directions.
    n_random : int, default=48
        Number of dense random directions.
    dense_max : int, default=300
        Largest number of gated parameters for the dense Hessian; Lanczos above.
    prefix : str, default="b."
        Prefix of the result names.

    Returns
    -------
    list of CheckResult
        ``L_gradient`` (:func:`check_gated_gradient`), ``L_hessian``
        (:func:`check_gated_hessian`), ``L_perturbation`` (:func:`perturbation_test_gated`, with
        the lowest Hessian eigenvector among the directions) and ``balanced``
        (:func:`check_balanced`).
    """
    hess, vec = _gated_hessian_check(objective, params, HESS_TOL, dense_max, prefix + "L_hessian")
    return [
        check_gated_gradient(objective, params, name=prefix + "L_gradient"),
        hess,
        perturbation_test_gated(
            objective,
            params,
            seed=seed,
            n_random=n_random,
            eigvec=vec,
            name=prefix + "L_perturbation",
        ),
        check_balanced(objective, params, name=prefix + "balanced"),
    ]


# --------------------------------------------------------------------------------------------
# Values: L = L_w on the balanced set, L > L_w off it
# --------------------------------------------------------------------------------------------
def check_values(
    objective: GatedObjective,
    params: GatedParams,
    *,
    seed: int = 0,
    n_unbalanced: int = 8,
    rel_allowance: float = ROUNDOFF,
    prefix: str = "",
) -> list[CheckResult]:
    r""":math:`L = L_w` at the balanced ``params``; :math:`L > L_w` at unbalanced points with the
    same :math:`w`.

    ``values.balanced``: :math:`|L - L_w|/(1 + |L_w|)` must be ``<= rel_allowance``.
    ``values.unbalanced``: at ``n_unbalanced`` points with the same :math:`w`, made by rescaling
    :math:`\omega_j \to c\,\omega_j`, :math:`\gamma_{j,1} \to \gamma_{j,1}/c` on the non-zero
    groups (random :math:`c \in [1/3, 3]`) and by switching on one gate of each zero group
    (:math:`\omega_j = 0`, :math:`\gamma_{j,1} \ne 0` keeps :math:`w_j = 0`), the relative gap
    :math:`(L - L_w)/(1+|L_w|)` must exceed the allowance; ``value`` is its minimum.
    ``details["formula_error"]`` compares :math:`L - L_w` with
    :math:`\lambda\sum_j(AM_j - GM_j)` (docs/theory.md [T-gap]).
    """
    gating, groups = objective.gating, objective.gating.groups
    rng = np.random.default_rng(seed)
    w = gating.collapse(params)
    lw = objective.penalised_value(params)
    denom = 1.0 + abs(lw)
    diff = abs(objective.value(params) - lw) / denom
    results = [CheckResult.from_violation(prefix + "values.balanced", diff, rel_allowance, L_w=lw)]
    norms = groups.norms(w)
    gaps, formula_err, w_err = [], [], []
    for _ in range(n_unbalanced):
        omega, gates = params.omega.copy(), params.gates.copy()
        c = np.exp(rng.uniform(-np.log(3.0), np.log(3.0), size=groups.n_groups))
        nz = norms > 0
        omega = omega * groups.expand(np.where(nz, c, 1.0))
        gates[nz, 0] = gates[nz, 0] / c[nz]
        gates[~nz, 0] = rng.normal(size=int((~nz).sum()))
        q = GatedParams(omega, gates)
        gap = objective.value(q) - objective.penalised_value(q)
        gaps.append(gap / denom)
        formula_err.append(abs(gap - objective.gap(q)) / denom)
        w_err.append(float(np.max(np.abs(gating.collapse(q) - w), initial=0.0)))
    min_gap = float(min(gaps)) if gaps else float("inf")
    results.append(
        CheckResult(
            prefix + "values.unbalanced",
            bool(min_gap > rel_allowance),
            min_gap - rel_allowance,
            rel_allowance,
            {
                "value": min_gap,
                "formula_error": float(max(formula_err, default=0.0)),
                "same_w_error": float(max(w_err, default=0.0)),
                "n_points": n_unbalanced,
            },
        )
    )
    return results
