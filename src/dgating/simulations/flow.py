r"""Gradient flow of the gated objective, :math:`\dot z = -\nabla L(z)`,
:math:`z = (\omega, \Gamma)`.

.. math::
    L(\omega, \Gamma) = L_0(\omega \odot \Gamma) + \frac{\lambda}{D}\big(\|\omega\|^2 +
    \|\Gamma\|_F^2\big).

Two backends integrate it:

* ``"scipy"``: :func:`scipy.integrate.solve_ivp` on
  :meth:`~dgating.objectives.GatedObjective.vector_field` (default DOP853, ``rtol=1e-10``,
  ``atol=1e-12``), the reference;
* ``"batched"``: the torch Dormand-Prince 5(4) engine of :mod:`dgating.simulations.batched`, which
  integrates many configurations at once, each with its own adaptive step
  (:func:`integrate_flows`).

Every :class:`FlowResult` records, at the requested times, the gated objective :math:`L`,
:math:`L_w`, the gap :math:`L - L_w` (computed without cancellation, see
:func:`gap_per_group`), the imbalances :math:`\Delta_{j,d}`, the group norms :math:`\|w_j\|` and
the support (groups that one proximal-gradient step on :math:`L_w` keeps non-zero).

Initialisation (:func:`initial_params`), fixed by the seed: ``init="random"`` draws
:math:`\omega_i \sim \mathcal N(0, S^2)` and :math:`\gamma_{j,d} \sim \mathcal N(0, S^2)` with
``numpy.random.default_rng(seed)`` (omega first, then the gates row by row), so
:math:`\Delta_{j,d}(0) = \|\omega_j\|^2 - \gamma_{j,d}^2 \ne 0`; ``init="ridge"`` lifts the ridge
solution :math:`w_0` (:func:`dgating.solvers.initial_point`) to its balanced factorisation and
then rescales :math:`\gamma_{j,d} \to c_{j,d}\gamma_{j,d}`,
:math:`\omega_j \to \omega_j / \prod_d c_{j,d}` with :math:`\log c_{j,d} \sim \mathcal N(0, S^2)`:
the same :math:`w_0`, unbalanced.

Examples
--------
>>> import numpy as np
>>> from dgating import GatedObjective, GroupedProblem
>>> rng = np.random.default_rng(0)
>>> prob = GroupedProblem(rng.normal(size=(30, 6)), rng.normal(size=30), np.repeat([0, 1, 2], 2))
>>> obj = GatedObjective(prob, depth=3, lam=0.1)
>>> res = integrate_flow(obj, initial_params(obj, seed=1), (0.0, 5.0), t_eval=[0.0, 5.0])
>>> res.success
True
>>> ratio = res.imbalance[-1] / res.imbalance[0]
>>> bool(np.allclose(ratio, np.exp(-4 * 0.1 * 5.0 / 3), rtol=1e-8))
True
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .._validation import (
    InvalidParameterError,
    check_array,
    check_choice,
    check_positive,
)
from ..gating import GatedParams
from ..objectives import GatedObjective
from ..problem import GroupedProblem

__all__ = [
    "BACKENDS",
    "INITS",
    "FlowResult",
    "gap_per_group",
    "initial_params",
    "integrate_flow",
    "integrate_flows",
    "record",
]

BACKENDS = ("scipy", "batched")
INITS = ("random", "ridge")


def initial_params(
    objective: GatedObjective, *, init: str = "random", seed: int = 0, init_scale: float = 1.0
) -> GatedParams:
    r"""The documented, seeded, unbalanced starting point of the flow (see the module docstring).

    Parameters
    ----------
    objective : GatedObjective
        Supplies the depth and the grouping.
    init : {"random", "ridge"}, default="random"
        Gaussian :math:`(\omega, \Gamma)` with standard deviation ``init_scale``, or the ridge
        solution lifted and unbalanced by log-normal rescalings of spread ``init_scale``.
    seed : int, default=0
        Seed of ``numpy.random.default_rng``.
    init_scale : float, default=1.0
        :math:`S`.

    Returns
    -------
    GatedParams
    """
    check_choice(init, "init", INITS)
    scale = check_positive(init_scale, "init_scale")
    gating = objective.gating
    J, k = gating.groups.n_groups, gating.n_gates
    rng = np.random.default_rng(seed)
    if init == "random":
        omega = rng.normal(scale=scale, size=gating.groups.n_features)
        gates = rng.normal(scale=scale, size=(J, k))
        return GatedParams(omega, gates)
    from ..solvers import initial_point

    w0 = initial_point(objective.problem, objective.lam)
    base = gating.lift(w0)
    c = np.exp(rng.normal(scale=scale, size=(J, k)))
    omega = base.omega / gating.groups.expand(c.prod(axis=1))
    return GatedParams(omega, base.gates * c)


def gap_per_group(sq_omega: np.ndarray, gates: np.ndarray) -> np.ndarray:
    r"""Per-group AM-GM gap :math:`AM_j - GM_j` computed without cancellation.

    With :math:`a_0 = \|\omega_j\|^2`, :math:`a_d = \gamma_{j,d}^2` and
    :math:`\Delta_d = a_0 - a_d`, the deviations from the mean
    :math:`e_i = a_i / AM - 1` are formed from the :math:`\Delta_d` only
    (:math:`AM = a_0 - \frac1D\sum_d \Delta_d`, :math:`a_0 - AM = \frac1D \sum_d\Delta_d`,
    :math:`a_d - AM = -\Delta_d + \frac1D\sum_{d'}\Delta_{d'}`), and since :math:`\sum_i e_i = 0`,

    .. math::
        AM - GM = AM\Big(1 - \exp\big(\tfrac1D\textstyle\sum_i \log(1 + e_i)\big)\Big)
        = -AM\,\operatorname{expm1}\Big(-\tfrac1D \textstyle\sum_i \varphi(e_i)\Big),
        \qquad \varphi(e) = e - \log(1 + e) \ge 0,

    a sum of non-negative terms, with :math:`\varphi` evaluated by its Taylor series for small
    :math:`|e|`. The difference ``AM - GM`` of two nearly equal numbers would lose everything
    below :math:`10^{-16} AM`; this form keeps full relative accuracy down to the accuracy of the
    :math:`\Delta_d` themselves (about :math:`10^{-16} a_0`), so a gap :math:`\propto \Delta^2`
    stays measurable to about :math:`10^{-32} a_0`.

    Parameters
    ----------
    sq_omega : ndarray, shape (..., n_groups)
        :math:`\|\omega_j\|^2`.
    gates : ndarray, shape (..., n_groups, depth - 1)
        :math:`\gamma_{j,d}`.

    Returns
    -------
    ndarray, shape (..., n_groups)
        :math:`AM_j - GM_j \ge 0` (multiply by :math:`\lambda` for the objective gap).

    Examples
    --------
    >>> import numpy as np
    >>> g = gap_per_group(np.array([4.0]), np.array([[1.0]]))  # AM 2.5, GM 2
    >>> round(float(g[0]), 12)
    0.5
    >>> g = gap_per_group(np.array([1.0]), np.array([[1.0 + 1e-12]]))  # (2e-12)^2 / 8
    >>> round(float(g[0]) / 5e-25, 3)
    1.0
    """
    sq_omega = np.asarray(sq_omega, dtype=float)
    gates = np.asarray(gates, dtype=float)
    depth = gates.shape[-1] + 1
    delta = sq_omega[..., None] - gates**2  # (..., J, D-1)
    mean_delta = delta.sum(axis=-1) / depth
    am = sq_omega - mean_delta
    dev = np.concatenate([mean_delta[..., None], mean_delta[..., None] - delta], axis=-1)
    positive = am > 0
    safe_am = np.where(positive, am, 1.0)
    e = np.clip(dev / safe_am[..., None], -1.0, None)
    small = np.abs(e) < 1e-3
    es = np.where(small, e, 0.0)
    series = es * es * (0.5 - es * (1 / 3 - es * (0.25 - es * (0.2 - es * (1 / 6)))))
    el = np.where(small | (e <= -1.0), 0.0, e)
    direct = el - np.log1p(el)
    phi = np.where(small, series, np.where(e <= -1.0, np.inf, direct))
    mean_phi = phi.sum(axis=-1) / depth
    return np.where(positive, -am * np.expm1(-mean_phi), 0.0)


@dataclass(frozen=True)
class FlowResult:
    r"""A gradient-flow trajectory of the gated objective, recorded at the times ``t``.

    Attributes
    ----------
    t : ndarray, shape (n_t,)
        Output times.
    omega : ndarray, shape (n_t, n_features)
        :math:`\omega(t)`.
    gates : ndarray, shape (n_t, n_groups, depth - 1)
        :math:`\Gamma(t)`.
    status : int
        0 if the end time was reached, -1 on failure.
    message : str
        Solver message.
    nfev : int
        Right-hand-side (gradient) evaluations.
    depth : int
        :math:`D`.
    lam : float
        :math:`\lambda`.
    backend : str
        ``"scipy"`` or ``"batched"``.
    seconds : float
        Wall-clock time of the integration (for a batch: the batch time divided by its size).
    rtol : float
        Relative tolerance used (``nan`` if unknown); sets the accuracy floor of the rates.
    objective : ndarray, shape (n_t,)
        :math:`L(\omega, \Gamma)`.
    penalised : ndarray, shape (n_t,)
        :math:`L_w(w)` at the collapsed weights.
    gap : ndarray, shape (n_t,)
        :math:`L - L_w = \lambda\sum_j (AM_j - GM_j)`, cancellation-free.
    gap_groups : ndarray, shape (n_t, n_groups)
        :math:`\lambda (AM_j - GM_j)`.
    imbalance : ndarray, shape (n_t, n_groups, depth - 1)
        :math:`\Delta_{j,d}(t)`.
    group_norms : ndarray, shape (n_t, n_groups)
        :math:`\|w_j(t)\|`.
    support : ndarray of bool, shape (n_t, n_groups)
        Groups kept non-zero by one proximal-gradient step on :math:`L_w` at :math:`w(t)` (step
        :math:`1/\mathrm{Lip}(\nabla L_0)`); all ``True`` when no Lipschitz bound is known.
    """

    t: np.ndarray
    omega: np.ndarray
    gates: np.ndarray
    status: int
    message: str
    nfev: int
    depth: int
    lam: float
    backend: str
    seconds: float = 0.0
    rtol: float = float("nan")
    objective: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    penalised: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    gap: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    gap_groups: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    imbalance: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    group_norms: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    support: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def success(self) -> bool:
        """``status == 0``."""
        return self.status == 0

    def params(self, i: int = -1) -> GatedParams:
        """The parameters at output index ``i`` (the last by default)."""
        return GatedParams(self.omega[i].copy(), self.gates[i].copy())


def record(
    objective: GatedObjective,
    t: np.ndarray,
    omega: np.ndarray,
    gates: np.ndarray,
    *,
    status: int = 0,
    message: str = "",
    nfev: int = 0,
    backend: str = "scipy",
    seconds: float = 0.0,
    rtol: float = float("nan"),
) -> FlowResult:
    """Build a :class:`FlowResult` with all recorded quantities from the states at times ``t``."""
    gating, problem = objective.gating, objective.problem
    groups = gating.groups
    lam = objective.lam
    prod = gates.prod(axis=-1)  # (n_t, J)
    W = omega * groups.expand(prod)
    sq_omega = groups.sq_norms(omega)
    norms = np.sqrt(groups.sq_norms(W))
    if isinstance(problem, GroupedProblem):
        Z = W @ problem.X.T
        L0 = np.array([problem.loss.value(z, problem.y) for z in Z])
        G = problem.loss.derivative(Z, problem.y) @ problem.X
    else:
        vg = [problem.value_and_grad(w) for w in W]
        L0 = np.array([v for v, _ in vg])
        G = np.array([g for _, g in vg]).reshape(W.shape)
    om_pen = omega[:, groups.penalised]
    gated_pen = lam * ((om_pen**2).sum(-1) + (gates**2).sum(axis=(-1, -2))) / gating.depth
    pen = objective.penalised_objective.penalty
    penalty_w = lam * (norms**pen.q).sum(-1)
    gap_groups = lam * gap_per_group(sq_omega, gates)
    lip = problem.lipschitz()
    if np.isfinite(lip) and lip > 0:
        step = 1.0 / lip
        zn = np.sqrt(groups.sq_norms(W - step * G))
        from ..penalties import scalar_prox

        support = scalar_prox(zn, step * lam, pen.q) > 0
    else:
        support = np.ones_like(norms, dtype=bool)
    return FlowResult(
        t=np.asarray(t, dtype=float),
        omega=omega,
        gates=gates,
        status=int(status),
        message=message,
        nfev=int(nfev),
        depth=gating.depth,
        lam=lam,
        backend=backend,
        seconds=float(seconds),
        rtol=float(rtol),
        objective=L0 + gated_pen,
        penalised=L0 + penalty_w,
        gap=gap_groups.sum(-1),
        gap_groups=gap_groups,
        imbalance=sq_omega[..., None] - gates**2,
        group_norms=norms,
        support=support,
    )


def _check_times(t_span, t_eval) -> tuple[float, float, np.ndarray]:
    span = check_array(t_span, "t_span", shape=(2,))
    t0, t1 = float(span[0]), float(span[1])
    if not t1 > t0:
        raise InvalidParameterError(f"`t_span` must satisfy t0 < t1; got ({t0}, {t1}).")
    if t_eval is None:
        t_eval = np.linspace(t0, t1, 201)
    t_eval = check_array(t_eval, "t_eval", ndim=1)
    if t_eval.size == 0 or np.any(np.diff(t_eval) < 0) or t_eval[0] < t0 or t_eval[-1] > t1:
        raise InvalidParameterError(
            f"`t_eval` must be a non-empty sorted array within t_span [{t0}, {t1}]; got "
            f"{t_eval.size} times in [{t_eval.min(initial=np.nan)}, {t_eval.max(initial=np.nan)}]."
        )
    return t0, t1, t_eval


def _solve_scipy(fun, t0, t1, y0, t_eval, method, rtol, atol, max_steps=None):
    """Step a scipy ``OdeSolver`` so that steps land on the output times.

    Explicit Runge-Kutta steps (``RK23``, ``RK45``, ``DOP853``) are shortened to end exactly on the
    next output time, so outputs are step ends rather than interpolant values (see
    :mod:`dgating.simulations.batched` for why). Other methods use ``solve_ivp``'s dense output.
    ``max_steps`` bounds the Runge-Kutta steps: a stiff flow stops there with status -1.
    """
    from scipy.integrate import solve_ivp
    from scipy.integrate._ivp.ivp import METHODS
    from scipy.integrate._ivp.rk import RungeKutta

    cls = METHODS.get(method) if isinstance(method, str) else method
    if cls is None:
        check_choice(method, "method", tuple(METHODS))
    if not (isinstance(cls, type) and issubclass(cls, RungeKutta)):
        sol = solve_ivp(fun, (t0, t1), y0, method=method, t_eval=t_eval, rtol=rtol, atol=atol)
        z = sol.y.T if sol.t.size else y0[None]
        t_out = sol.t if sol.t.size else np.array([t0])
        return t_out, z, 0 if sol.status == 0 else -1, str(sol.message), int(sol.nfev)
    solver = cls(fun, t0, np.array(y0, dtype=float), t1, rtol=rtol, atol=atol)
    ts, zs = [], []
    i = 0
    while i < t_eval.size and t_eval[i] <= t0:
        ts.append(t_eval[i])
        zs.append(solver.y.copy())
        i += 1
    message = "reached t_end"
    steps = 0
    while solver.status == "running":
        if max_steps is not None and steps >= max_steps:
            message = f"step budget of {max_steps} exhausted at t={solver.t:.6g}"
            break
        steps += 1
        if i < t_eval.size:
            gap = t_eval[i] - solver.t
            if 0 < gap < solver.h_abs:
                solver.h_abs = gap
        msg = solver.step()
        if solver.status == "failed":
            message = f"failed at t={solver.t:.6g}: {msg}"
            break
        while i < t_eval.size and t_eval[i] <= solver.t * (1 + 1e-15) + 1e-300:
            ts.append(t_eval[i])
            zs.append(solver.y.copy())
            i += 1
    status = 0 if solver.status == "finished" else -1
    if not ts:
        ts, zs = [t0], [np.array(y0, dtype=float)]
    return np.array(ts), np.array(zs), status, message, int(solver.nfev)


def integrate_flow(
    objective: GatedObjective,
    params0: GatedParams,
    t_span: tuple[float, float],
    *,
    backend: str = "scipy",
    method: str = "DOP853",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    t_eval: Sequence[float] | np.ndarray | None = None,
    throw: bool = True,
    max_steps: int | None = None,
) -> FlowResult:
    r"""Integrate the gradient flow :math:`\dot z = -\nabla L(z)` of a gated objective.

    Parameters
    ----------
    objective : GatedObjective
        :math:`L` (any problem: squared, logistic or a :class:`~dgating.problem.TorchProblem`).
    params0 : GatedParams
        :math:`(\omega(t_0), \Gamma(t_0))`, e.g. from :func:`initial_params`.
    t_span : (float, float)
        :math:`(t_0, T)`.
    backend : {"scipy", "batched"}, default="scipy"
        Reference ``solve_ivp`` or the torch engine (a batch of one).
    method : str, default="DOP853"
        ``solve_ivp`` method (scipy backend only). For the explicit Runge-Kutta methods steps
        land exactly on the output times (no interpolation).
    rtol, atol : float
        Tolerances.
    t_eval : array_like, shape (n_t,), optional
        Output times (default: 201 equispaced points).
    throw : bool, default=True
        Raise :class:`RuntimeError` if the integration fails; otherwise return the result with
        ``status = -1``.
    max_steps : int, optional
        Bound on the Runge-Kutta steps (scipy backend, explicit methods): a flow too stiff to
        finish within it ends with ``status = -1`` (or raises, with ``throw``).

    Returns
    -------
    FlowResult
    """
    check_choice(backend, "backend", BACKENDS)
    rtol = check_positive(rtol, "rtol")
    atol = check_positive(atol, "atol")
    params0 = objective.gating.check(params0)
    t0, t1, t_eval = _check_times(t_span, t_eval)
    if backend == "batched":
        # The engine starts at t = 0; the flow is autonomous, so shift and shift back.
        res = integrate_flows(
            [objective], [params0], t1 - t0, t_eval=t_eval - t0, rtol=rtol, atol=atol, throw=throw
        )[0]
        return replace(res, t=t_eval) if t0 != 0.0 else res
    start = time.perf_counter()
    t_out, z, status, message, nfev = _solve_scipy(
        objective.vector_field,
        t0,
        t1,
        objective.gating.pack(params0),
        t_eval,
        method,
        rtol,
        atol,
        max_steps,
    )
    seconds = time.perf_counter() - start
    if status != 0 and throw:
        raise RuntimeError(f"integrate_flow failed: {message}")
    p = objective.gating.groups.n_features
    J, k = objective.gating.groups.n_groups, objective.gating.n_gates
    return record(
        objective,
        t_out,
        z[:, :p].copy(),
        z[:, p:].reshape(-1, J, k).copy(),
        status=status,
        message=message,
        nfev=nfev,
        backend="scipy",
        seconds=seconds,
        rtol=rtol,
    )


def integrate_flows(
    objectives: Sequence[GatedObjective],
    params0: Sequence[GatedParams],
    t_end: float,
    *,
    t_eval: Sequence[float] | np.ndarray | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    throw: bool = True,
    record_metrics: bool = True,
) -> list[FlowResult]:
    r"""Integrate many gradient flows at once with the batched torch engine.

    The configurations may differ in :math:`\lambda`, depth, data and initial point, but share the
    grouping (same labels). Each has its own adaptive Dormand-Prince 5(4) step size and error
    control; they run from ``t = 0`` to the common ``t_end``.

    Parameters
    ----------
    objectives : sequence of GatedObjective, length B
        One per configuration; objectives built on the *same* problem object share its data (one
        matrix product for the batch).
    params0 : sequence of GatedParams, length B
        Initial points.
    t_end : float
        End time :math:`T`.
    t_eval : array_like, shape (n_t,), optional
        Output times in ``[0, T]`` (default 201 equispaced).
    rtol, atol : float
        Tolerances (defaults 1e-8, 1e-12).
    throw : bool, default=True
        Raise :class:`RuntimeError` if any configuration fails.
    record_metrics : bool, default=True
        Compute the recorded quantities (objective, gap, support, ...); ``False`` leaves them
        ``None`` (for benchmarks).

    Returns
    -------
    list of FlowResult
    """
    if len(objectives) != len(params0) or not objectives:
        raise InvalidParameterError(
            f"`objectives` and `params0` must be non-empty and of equal length; got "
            f"{len(objectives)} and {len(params0)}."
        )
    labels = objectives[0].gating.groups.labels
    for i, obj in enumerate(objectives):
        if not np.array_equal(obj.gating.groups.labels, labels):
            raise InvalidParameterError(
                f"`objectives` must share one grouping; objective {i} has different group labels."
            )
    rtol = check_positive(rtol, "rtol")
    atol = check_positive(atol, "atol")
    t_end = check_positive(t_end, "t_end")
    _, _, t_eval = _check_times((0.0, t_end), t_eval)
    params0 = [obj.gating.check(prm) for obj, prm in zip(objectives, params0)]
    from .batched import solve_batched

    start = time.perf_counter()
    raw = solve_batched(
        [obj.problem for obj in objectives],
        [obj.depth for obj in objectives],
        [obj.lam for obj in objectives],
        params0,
        t_end,
        t_eval,
        rtol=rtol,
        atol=atol,
    )
    seconds = (time.perf_counter() - start) / len(objectives)
    if throw and np.any(raw.status != 0):
        bad = np.flatnonzero(raw.status != 0)
        raise RuntimeError(
            f"integrate_flows failed for configurations {bad[:10].tolist()} (step size underflow, "
            f"non-finite state or step budget)."
        )
    groups = objectives[0].gating.groups
    p, J = groups.n_features, groups.n_groups
    kmax = raw.z.shape[-1] - p
    kmax = kmax // J if J else 0
    out = []
    for b, obj in enumerate(objectives):
        z = raw.z[b]
        omega = z[:, :p].copy()
        gates = z[:, p:].reshape(-1, J, kmax)[:, :, : obj.gating.n_gates].copy()
        msg = (
            f"reached t_end with {raw.n_steps[b]} steps ({raw.n_rejected[b]} rejected)"
            if raw.status[b] == 0
            else "failed: step size underflow, non-finite state or step budget"
        )
        if record_metrics and raw.status[b] == 0:
            out.append(
                record(
                    obj,
                    t_eval,
                    omega,
                    gates,
                    status=int(raw.status[b]),
                    message=msg,
                    nfev=int(raw.nfev[b]),
                    backend="batched",
                    seconds=seconds,
                    rtol=rtol,
                )
            )
        else:
            out.append(
                FlowResult(
                    t=t_eval,
                    omega=omega,
                    gates=gates,
                    status=int(raw.status[b]),
                    message=msg,
                    nfev=int(raw.nfev[b]),
                    depth=obj.depth,
                    lam=obj.lam,
                    backend="batched",
                    seconds=seconds,
                    rtol=rtol,
                )
            )
    return out
