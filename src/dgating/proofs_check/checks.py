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

Second-order verdicts. A Hessian check passes outright only when the smallest relative
eigenvalue exceeds ``+hess_tol`` (first order plus a positive definite Hessian is sufficient for
a strict local minimiser). When it lies in :math:`[-\mathrm{hess\_tol}, \mathrm{hess\_tol}]` the
Hessian is singular to round-off (e.g. the bias of a dead tanh unit of a network is an exactly
flat direction) and second-order conditions decide nothing; the null directions :math:`v` are
then resolved by a higher-order test along the lines :math:`x \pm t v`,
:math:`t \in` :data:`NULL_RADII` :math:`\times \min(1, \min_{j \in S}\|w_j\|)`: the objective
must not decrease (allowance :math:`10^{-13}(1 + |f|)`) and the relative gradient must stay
below ``STAT_TOL``, i.e. each null direction is tangent to a line of critical points with equal
values (a Morse-Bott critical manifold, on which a Hessian positive definite in the normal
directions gives a non-strict local minimiser). A decrease fails the check; a line that leaves
the critical set leaves the check ``"inconclusive"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from ..certificates import certify
from ..gating import GatedParams
from ..objectives import GatedObjective, PenalisedObjective
from ..problem import Problem
from .result import CheckResult, to_builtin

__all__ = [
    "NULL_RADII",
    "RADII",
    "ROUNDOFF",
    "check_balanced",
    "check_gated_gradient",
    "check_gated_hessian",
    "check_gated_minimiser",
    "check_penalised_certificate",
    "check_penalised_minimiser",
    "check_values",
    "gated_hessian_eigen",
    "perturbation_test_gated",
    "perturbation_test_penalised",
]

#: Radii of the perturbation tests (unit directions).
RADII = np.logspace(-6, -2, 9)
#: Relative round-off allowance of the perturbation tests and of value comparisons.
ROUNDOFF = 1e-13
#: Default tolerances (relative): stationarity, Hessian, balancedness.
STAT_TOL, HESS_TOL, BAL_TOL = 1e-7, 1e-8, 1e-8
#: Radii of the higher-order test along null directions, in units of
#: :math:`\min(1, \min_{j \in S}\|w_j\|)` (the smallest non-zero group stays non-zero).
NULL_RADII = np.array([1e-3, 1e-2, 1e-1])
#: Tolerance of exact identities evaluated in floating point (relative, round-off units).
IDENTITY_TOL = 1e-12
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

    (must be ``<= identity_tol``; otherwise the check fails whatever the imbalance).

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
    violation = rel_imb if identity_err <= identity_tol else np.inf
    return CheckResult.from_violation(
        name,
        violation,
        tol,
        value=rel_imb,
        identity_error=identity_err,
        identity_tol=identity_tol,
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
    ``Lw_zero_groups``: :math:`\max_{j: w_j=0}(\|g_j\| - \lambda)/s` for :math:`D = 2` (``<= tol``);
    ``"not-applicable"`` when there is no zero group or :math:`D \ge 3`: for :math:`q < 1` every
    zero group is a local minimum along itself, since :math:`\lambda\|w_j\|^q` outgrows any
    linear decrease of :math:`L_0` (docs/theory.md [T-zero-groups]).
    ``Lw_hessian``: smallest relative eigenvalue of the reduced Hessian (``value``); see the module
    docstring for the verdict (``"not-applicable"`` on an empty support).
    """
    cert = certify(problem, depth, lam, w, tol=tol, hess_tol=hess_tol)
    support = cert.support
    n_zero = problem.n_groups - len(support)
    if depth == 2 and n_zero:
        zero = CheckResult.from_violation(
            prefix + "Lw_zero_groups", -cert.zero_group_margin, tol, n_zero_groups=n_zero
        )
    else:
        reason = "no zero group" if not n_zero else f"void for q = 2/{depth} < 1"
        zero = CheckResult.undecided(
            prefix + "Lw_zero_groups", "not-applicable", tol, reason, n_zero_groups=n_zero
        )
    obj = PenalisedObjective(problem, depth, lam)
    H, idx = obj.reduced_hessian(w)
    name = prefix + "Lw_hessian"
    if not idx.size:
        hess = CheckResult.undecided(name, "not-applicable", hess_tol, "empty support")
    else:
        evals, evecs = np.linalg.eigh(H)
        vecs = np.zeros((w.size, idx.size))
        vecs[idx] = evecs

        def grad(x: np.ndarray) -> np.ndarray:
            return obj.grad_on_support(x)[idx]

        hess = _hessian_verdict(
            name, evals, vecs, hess_tol, obj.value, grad, w, obj.scale, _null_unit(obj, w)
        )
    return [
        CheckResult.from_violation(
            prefix + "Lw_stationarity", cert.stationarity, tol, support=support
        ),
        zero,
        hess,
    ]


def _null_unit(obj: PenalisedObjective, w: np.ndarray) -> float:
    """Unit of :data:`NULL_RADII`: ``min(1, smallest non-zero group norm)``."""
    norms = obj.groups.norms(w)
    return float(min(1.0, np.min(norms[norms > 0], initial=1.0)))


def _hessian_verdict(
    name: str,
    evals: np.ndarray,
    vecs: np.ndarray,
    hess_tol: float,
    value: Callable[[np.ndarray], float],
    grad: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    scale: float,
    unit: float,
    big: float | None = None,
    complete: bool = True,
    **details,
) -> CheckResult:
    r"""Verdict of a second-order check from the eigenpairs ``evals`` (ascending) and ``vecs``
    (columns, in the coordinates of ``x0``) of the Hessian at ``x0``.

    ``value`` is :math:`\lambda_{\min} / \max|\lambda|` (``big`` when only some eigenpairs are
    known, ``complete=False``). Below ``-hess_tol``: ``"fail"``; above ``+hess_tol``: ``"pass"``;
    in between, every eigenvector with relative eigenvalue ``<= hess_tol`` is tested along
    :math:`x_0 \pm t v`, :math:`t \in` ``unit *`` :data:`NULL_RADII`: a relative decrease above
    :data:`ROUNDOFF` fails, a relative gradient above :data:`STAT_TOL` is ``"inconclusive"``,
    else ``"pass"``.
    """
    big = float(np.abs(evals).max()) if big is None else big
    rel = float(evals[0]) / max(big, np.finfo(float).tiny)
    details = {"min_eigenvalue": float(evals[0]), "max_abs_eigenvalue": big, **details}
    if not (rel <= hess_tol and rel >= -hess_tol):  # outside the null band (or nan)
        return CheckResult.from_violation(name, -rel, hess_tol, value=rel, **details)
    n_null = int(np.sum(evals <= hess_tol * big))
    if not complete and n_null == evals.size:
        return CheckResult.undecided(  # only the lowest eigenpairs are known (Lanczos)
            name, "inconclusive", hess_tol, "singular Hessian, null space unknown", rel, **details
        )
    null = vecs[:, :n_null]
    f0 = value(x0)
    radii = unit * NULL_RADII
    drops, grads = [], []
    for v in null.T:
        for t in np.concatenate([radii, -radii]):
            x = x0 + t * v
            drops.append((f0 - value(x)) / (1.0 + abs(f0)))
            grads.append(float(np.max(np.abs(grad(x)), initial=0.0)) / scale)
    details |= {
        "null_dim": null.shape[1],
        "null_radii": [float(radii[0]), float(radii[-1])],
        "null_max_decrease": max(drops),
        "null_max_gradient": max(grads),
    }
    if not max(drops) <= ROUNDOFF:
        details |= {"value": rel, "reason": "decrease along a null direction"}
        return CheckResult(name, "fail", ROUNDOFF - max(drops), hess_tol, to_builtin(details))
    if not max(grads) <= STAT_TOL:
        return CheckResult.undecided(
            name,
            "inconclusive",
            hess_tol,
            "singular Hessian whose null directions leave the critical set",
            rel,
            **details,
        )
    return CheckResult.from_violation(name, 0.0, hess_tol, value=rel, **details)


def _add_direction(dirs: list[np.ndarray], kinds: list[str], d: np.ndarray, kind: str) -> None:
    """Append the unit vector of ``d`` (and its ``kind``) unless ``d`` is zero."""
    norm = np.linalg.norm(d)
    if norm > 0:
        dirs.append(d / norm)
        kinds.append(kind)


def _penalised_directions(
    obj: PenalisedObjective, w: np.ndarray, rng: np.random.Generator, n_random: int
) -> tuple[np.ndarray, list[str]]:
    groups = obj.groups
    p = w.size
    support = obj.support_mask(w)
    norms = groups.norms(w)
    g = obj.problem.grad(w)
    dirs: list[np.ndarray] = []
    kinds: list[str] = []
    add = functools.partial(_add_direction, dirs, kinds)

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


def gated_hessian_eigen(
    objective: GatedObjective, params: GatedParams, *, dense_max: int = DENSE_MAX
) -> tuple[np.ndarray, np.ndarray, float, str]:
    r"""Eigenpairs of :math:`\nabla^2 L` (packed coordinates) and its largest absolute eigenvalue.

    Dense (:meth:`~dgating.objectives.GatedObjective.hessian`, ``numpy.linalg.eigh``, every
    eigenpair) up to ``dense_max`` parameters, otherwise Lanczos (``scipy.sparse.linalg.eigsh``)
    on a ``LinearOperator`` built from :meth:`~dgating.objectives.GatedObjective.hvp` (the lowest
    eigenpair only).

    Returns
    -------
    evals : ndarray, ascending
    vecs : ndarray, shape (n_params, len(evals))
    max_abs_eig : float
    method : {"dense", "lanczos"}
    """
    gating = objective.gating
    n = gating.n_params
    if n <= dense_max:
        evals, evecs = np.linalg.eigh(objective.hessian(params))
        return evals, evecs, float(np.abs(evals).max()), "dense"
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
    return big - vals, vecs, big, "lanczos"


def check_gated_hessian(
    objective: GatedObjective,
    params: GatedParams,
    *,
    hess_tol: float = HESS_TOL,
    dense_max: int = DENSE_MAX,
    name: str = "b.L_hessian",
) -> CheckResult:
    r"""Second-order condition for :math:`L`: smallest eigenvalue of :math:`\nabla^2 L` divided by
    the largest absolute one (``value``); verdict as in the module docstring."""
    return _gated_hessian_check(objective, params, hess_tol, dense_max, name)[0]


def _gated_hessian_check(
    objective: GatedObjective, params: GatedParams, hess_tol: float, dense_max: int, name: str
) -> tuple[CheckResult, np.ndarray]:
    """:func:`check_gated_hessian` and the lowest eigenvector (for the perturbation test)."""
    evals, vecs, big, method = gated_hessian_eigen(objective, params, dense_max=dense_max)
    gating = objective.gating
    pen = objective.penalised_objective

    def value(z: np.ndarray) -> float:
        return objective.value(gating.unpack(z))

    def grad(z: np.ndarray) -> np.ndarray:
        return gating.pack(objective.grad(gating.unpack(z)))

    unit = _null_unit(pen, gating.collapse(params))
    z0 = gating.pack(params)
    result = _hessian_verdict(
        name,
        evals,
        vecs,
        hess_tol,
        value,
        grad,
        z0,
        pen.scale,
        unit,
        big,
        method == "dense",
        method=method,
    )
    return result, vecs[:, 0]


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
    dirs: list[np.ndarray] = []
    kinds: list[str] = []
    add = functools.partial(_add_direction, dirs, kinds)

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
    :math:`(L - L_w)/(1+|L_w|)` must exceed the allowance; ``value`` is its minimum. The points
    must collapse to :math:`w` (``details["same_w_error"]``, relative, ``<=`` :data:`IDENTITY_TOL`),
    else the comparison is void and the check fails.
    ``values.gap_formula``: at the same points, :math:`|(L - L_w) - \lambda\sum_j(AM_j - GM_j)| /
    (1 + |L_w|)` (docs/theory.md [T-gap], an exact identity) must be ``<=`` :data:`IDENTITY_TOL`.
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
    if not n_unbalanced:
        return results + [
            CheckResult.undecided(prefix + name, "not-applicable", tol, "no unbalanced point")
            for name, tol in (("values.unbalanced", 0.0), ("values.gap_formula", IDENTITY_TOL))
        ]
    min_gap = float(min(gaps))
    same_w = max(w_err) / max(1.0, float(np.max(np.abs(w), initial=0.0)))
    # The gap must exceed the allowance (violation = allowance - gap <= 0) on points of equal w.
    violation = rel_allowance - min_gap if same_w <= IDENTITY_TOL else np.inf
    results.append(
        CheckResult.from_violation(
            prefix + "values.unbalanced",
            violation,
            0.0,
            value=min_gap,
            allowance=rel_allowance,
            same_w_error=same_w,
            n_points=n_unbalanced,
        )
    )
    results.append(
        CheckResult.from_violation(prefix + "values.gap_formula", max(formula_err), IDENTITY_TOL)
    )
    return results
