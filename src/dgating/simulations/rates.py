r"""Measured exponential rates of decay, and the rates of the gradient flow compared with theory.

:func:`measure_rate` fits :math:`\log \mathrm{err}(t) \approx a + s\,t` (``kind="linear"``) or
:math:`\log \mathrm{err} \approx a + s \log t` (``kind="algebraic"``) over a window chosen
automatically:

* the *end* of the window is set by the floating-point (or integration) floor: the series is cut
  where it stops decreasing monotonically after having fallen ``floor_depth`` decades (noise
  shows up as increases once the floor is within a factor :math:`\approx 1/(|s|\,\delta t)` of
  the signal), and a further ``floor_margin`` decades are dropped so that the floor contributes at
  most about ``10**-floor_margin`` relative error; a known floor level can be passed instead
  (``floor=``);
* within what remains, local slopes are fitted over sub-windows of a twentieth of the points, and
  the window is the longest run of sub-windows whose slopes agree with one of them to ``rel_tol``:
  this drops the transient at the start and a smooth floor at the end (integration error, which
  does not show up as noise).

:func:`flow_rates` applies it to a :class:`~dgating.simulations.flow.FlowResult`: the imbalance
:math:`\|\Delta(t)\|_F` (exactly :math:`e^{-4\lambda t/D}\|\Delta(0)\|_F`, docs/theory.md
[T-imbalance-flow]), the gap :math:`L - L_w`, and the gap per class of groups (*surviving*: the norm
converges to a non-zero value; *vanishing*: it decays to zero), against :func:`theory_rates`:

.. math::
    r_\Delta = \frac{4\lambda}{D}, \qquad r_{\text{surviving}} = \frac{8\lambda}{D}, \qquad
    r_{\text{vanishing}} = \begin{cases} 4\lambda/D & D \ge 3 \\ 2\lambda + 2 g & D = 2
    \end{cases}

with :math:`g = \|\nabla_{w_j} L_0\|` at the limit (the slowest vanishing group, i.e. the smallest
:math:`g`, dominates the class sum). Surviving groups: the gap of a group is
:math:`\approx c\,\Delta^2` near a balanced non-zero limit, hence twice the imbalance rate.
Vanishing groups for :math:`D \ge 3`: near 0 the gated Hessian block is
:math:`\frac{2\lambda}{D} I` (docs/theory.md [T-zero-groups]), so :math:`\omega_j, \gamma_{j,d}
\propto e^{-2\lambda t/D}` and both :math:`AM_j` and :math:`GM_j` decay like :math:`e^{-4\lambda
t/D}`. For :math:`D = 2` the block has eigenvalues :math:`\lambda \pm g`; the gap
:math:`\frac12(\|\omega_j\| - |\gamma_j|)^2` lives on the fast one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import InvalidParameterError, check_choice, check_depth, check_lam

__all__ = [
    "FlowRates",
    "gap_bound",
    "RateEstimate",
    "classify_groups",
    "flow_rates",
    "horizon_advice",
    "measure_rate",
    "theory_rates",
]


@dataclass(frozen=True)
class RateEstimate:
    r"""A least-squares fit :math:`\log \mathrm{err} \approx a + s\, x` (intercept, slope).

    Attributes
    ----------
    slope : float
        Fitted slope (negative for decay; ``nan`` when no valid window was found).
    intercept : float
        Fitted intercept.
    r2 : float
        Coefficient of determination of the fit.
    window : tuple of float
        ``(t_start, t_end)`` of the fit window.
    n_points : int
        Points in the window.
    floor : float or None
        Detected (or given) floor level, ``None`` when no floor was reached.
    kind : str
        ``"linear"`` or ``"algebraic"``.
    message : str
        Why the window is what it is (or why no rate was found).
    """

    slope: float
    intercept: float
    r2: float
    window: tuple[float, float]
    n_points: int = 0
    floor: float | None = None
    kind: str = "linear"
    message: str = ""

    @property
    def rate(self) -> float:
        """``-slope``: the exponential rate of decay (``kind="linear"``) or the order."""
        return -self.slope

    @property
    def valid(self) -> bool:
        """A finite slope was fitted."""
        return bool(np.isfinite(self.slope))


def _nan_estimate(kind: str, message: str) -> RateEstimate:
    return RateEstimate(np.nan, np.nan, np.nan, (np.nan, np.nan), 0, None, kind, message)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - ym)).sum()) / sxx
    intercept = float(ym - slope * xm)
    res = y - (intercept + slope * x)
    syy = float(((y - ym) ** 2).sum())
    r2 = 1.0 - float((res**2).sum()) / syy if syy > 0 else 1.0
    return slope, intercept, r2


def measure_rate(
    t: np.ndarray,
    err: np.ndarray,
    *,
    kind: str = "linear",
    floor: float | None = None,
    floor_margin: float = 3.0,
    floor_depth: float = 6.0,
    rel_tol: float = 1e-3,
    min_points: int = 8,
    window: tuple[float, float] | None = None,
) -> RateEstimate:
    r"""Fit the rate of decay of ``err(t)`` over an automatically chosen window.

    Parameters
    ----------
    t : ndarray, shape (n,)
        Increasing times (``kind="algebraic"``: positive).
    err : ndarray, shape (n,)
        Non-negative errors; the fit uses :math:`\log \mathrm{err}`.
    kind : {"linear", "algebraic"}, default="linear"
        Exponential decay (``x = t``) or power law (``x = log t``).
    floor : float, optional
        Known floor level; the window ends where ``err < floor * 10**floor_margin``. By default the
        floor is detected (first increase of ``err``).
    floor_margin : float, default=3.0
        Decades kept clear of the floor.
    floor_depth : float, default=6.0
        Increases of ``err`` are taken as floor noise only after ``err`` has fallen this many
        decades below its running maximum (earlier ones are transient).
    rel_tol : float, default=1e-3
        Relative agreement of local slopes that defines the asymptotic regime.
    min_points : int, default=8
        Minimum window length.
    window : (float, float), optional
        Use this window instead of the automatic one.

    Returns
    -------
    RateEstimate

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 80.0, 801)
    >>> floor = 1e-12 * (1 + 0.5 * np.sin(37 * t))  # a noisy floor
    >>> err = np.exp(-0.5 * t) * (1 + np.exp(-2 * t)) + floor  # transient, decay, floor
    >>> est = measure_rate(t, err)
    >>> round(est.rate, 4), est.window[0] > 1.0, est.window[1] < 50.0
    (0.5, True, True)
    """
    check_choice(kind, "kind", ("linear", "algebraic"))
    t = np.asarray(t, dtype=float)
    err = np.asarray(err, dtype=float)
    if t.shape != err.shape or t.ndim != 1:
        raise InvalidParameterError(
            f"`t` and `err` must be 1-d arrays of equal shape; got {t.shape} and {err.shape}."
        )
    ok = np.isfinite(err) & (err > 0) & np.isfinite(t)
    if kind == "algebraic":
        ok &= t > 0
    # The usable series is the leading run of valid points.
    stop = int(np.argmin(ok)) if not ok.all() else t.size
    if window is not None:
        sel = (t >= window[0]) & (t <= window[1]) & ok
        idx = np.flatnonzero(sel)
        if idx.size < 2:
            return _nan_estimate(kind, "fewer than 2 valid points in the given window")
        x = np.log(t[idx]) if kind == "algebraic" else t[idx]
        s, a, r2 = _fit(x, np.log(err[idx]))
        return RateEstimate(
            s, a, r2, (float(t[idx[0]]), float(t[idx[-1]])), idx.size, floor, kind, "given window"
        )
    if stop < min_points:
        return _nan_estimate(kind, f"only {stop} leading valid (positive, finite) points")
    t, err = t[:stop], err[:stop]
    x = np.log(t) if kind == "algebraic" else t
    y = np.log(err)
    floor_level: float | None = None
    end = t.size
    if floor is not None:
        below = np.flatnonzero(err < floor * 10.0**floor_margin)
        if below.size:
            end = int(below[0])
            floor_level = float(floor)
        msg = "end set by the given floor" if below.size else "given floor not reached"
    else:
        # Increases count as floor noise only once the series has fallen `floor_depth` decades
        # below its running maximum; earlier ones belong to the transient.
        running_max = np.maximum.accumulate(y)
        deep = y[1:] < running_max[:-1] - floor_depth * np.log(10.0)
        rises = np.flatnonzero((np.diff(y) >= 0) & deep)
        if rises.size:
            # Everything from the first non-decrease on is at (or near) the floor.
            first = int(rises[0]) + 1
            floor_level = float(np.median(err[first:])) if first < err.size else float(err[-1])
            cut = err[first] * 10.0**floor_margin
            above = np.flatnonzero(err[:first] > cut)
            end = int(above[-1]) + 1 if above.size else 0
            msg = f"floor detected at t={t[first]:.4g}"
        else:
            msg = "no floor reached"
    if end < min_points:
        return _nan_estimate(kind, f"only {end} points above the floor ({msg})")
    x, y = x[:end], y[:end]
    sub = max(min_points // 2, end // 20, 2)
    m = end - sub + 1
    local = np.array([_fit(x[i : i + sub], y[i : i + sub])[0] for i in range(m)])
    # The asymptotic regime is the longest run of sub-windows whose local slopes agree with one
    # of them to rel_tol: it excludes the transient at the start and a smooth (integration-error)
    # floor at the end, which the monotonicity test above cannot see.
    best = (0, 0, m - 1)
    for i in range(m):
        close = np.abs(local - local[i]) <= rel_tol * abs(local[i])
        left = np.flatnonzero(~close[:i])
        right = np.flatnonzero(~close[i:])
        lo = int(left[-1]) + 1 if left.size else 0
        hi = i + int(right[0]) - 1 if right.size else m - 1
        if hi - lo >= best[0]:
            best = (hi - lo, lo, hi)
    start, end = best[1], best[2] + sub
    if best[0] == 0:
        msg += "; no stable regime (local slopes never agree)"
    s, a, r2 = _fit(x[start:end], y[start:end])
    return RateEstimate(
        s, a, r2, (float(t[start]), float(t[end - 1])), end - start, floor_level, kind, msg
    )


def theory_rates(depth: int, lam: float, g: float | None = None) -> dict[str, float]:
    r"""The rates derived by :mod:`dgating.theory` (``imbalance_rate(depth)``,
    ``gap_rates(depth)``, sympy, cached per depth) evaluated at ``lam`` and ``g``.

    Parameters
    ----------
    depth : int
        :math:`D`.
    lam : float
        :math:`\lambda`.
    g : float, optional
        :math:`\|\nabla_{w_j} L_0\|` at the limit for the vanishing groups (needed for ``D = 2``;
        ``nan`` rate without it).

    Returns
    -------
    dict
        Keys ``"imbalance"``, ``"surviving"``, ``"vanishing"``.

    Examples
    --------
    >>> r = theory_rates(4, 0.2)
    >>> round(r["imbalance"], 12), round(r["surviving"], 12), round(r["vanishing"], 12)
    (0.2, 0.4, 0.2)
    >>> round(theory_rates(2, 0.2, g=0.05)["vanishing"], 12)
    0.5
    """
    from ..theory.balancedness import imbalance_rate
    from ..theory.gap import gap_rates
    from ..theory.symbols import g as g_sym
    from ..theory.symbols import lam as lam_sym

    depth = check_depth(depth)
    lam = check_lam(lam)
    gval = np.nan if g is None else float(g)
    exprs = {"imbalance": imbalance_rate(depth), **gap_rates(depth)}
    out = {}
    for key, expr in exprs.items():
        if g_sym in expr.free_symbols and not np.isfinite(gval):
            out[key] = np.nan
        else:
            out[key] = float(expr.subs({lam_sym: lam, g_sym: gval}))
    return out


def gap_bound(result) -> np.ndarray:
    r"""The a-priori bound of docs/theory.md [T-gap] along a flow, shape ``(n_t,)``.

    .. math::
        L - L_w \le \lambda\,\frac{D-1}{D} \sum_{j,d} |\Delta_{j,d}(0)|\, e^{-4\lambda t/D}.

    It decays at the imbalance rate :math:`4\lambda/D`; the gap of surviving groups decays twice
    as fast (:func:`flow_rates`), so the bound is tight only through the vanishing groups.
    """
    lam, depth = result.lam, result.depth
    total = float(np.abs(result.imbalance[0]).sum())
    return lam * (depth - 1) / depth * total * np.exp(-4 * lam * (result.t - result.t[0]) / depth)


def classify_groups(group_norms: np.ndarray, *, vanish_tol: float = 1e-6) -> np.ndarray:
    r"""Class of every group at the end of a trajectory: ``True`` for vanishing.

    A group is *vanishing* when :math:`\|w_j(T)\| \le \mathrm{vanish\_tol} \cdot \max(1,
    \max_j \|w_j(0)\|)` and its norm decreased over the last tenth of the trajectory; otherwise
    it is *surviving*.

    Parameters
    ----------
    group_norms : ndarray, shape (n_t, n_groups)
        :math:`\|w_j(t)\|`.
    vanish_tol : float, default=1e-6

    Returns
    -------
    ndarray of bool, shape (n_groups,)
    """
    norms = np.asarray(group_norms, dtype=float)
    scale = max(1.0, float(norms[0].max(initial=0.0)))
    last = norms[-1]
    tail = norms[max(0, int(0.9 * len(norms)) - 1)]
    return (last <= vanish_tol * scale) & (last <= tail)


@dataclass(frozen=True)
class FlowRates:
    r"""Measured rates of one flow and the theory they are compared with.

    Attributes
    ----------
    imbalance, gap, gap_surviving, gap_vanishing : RateEstimate or None
        Fits of :math:`\|\Delta\|_F`, :math:`L - L_w` and the per-class gap sums (``None`` when a
        class is empty).
    theory : dict
        :func:`theory_rates` at the depth, :math:`\lambda` and (``D = 2``) the smallest
        :math:`\|\nabla_{w_j}L_0\|` over the vanishing groups at the end.
    vanishing : ndarray of bool, shape (n_groups,)
        :func:`classify_groups`.
    g_vanishing : float or None
        That smallest gradient norm (``None`` without vanishing groups).
    """

    imbalance: RateEstimate
    gap: RateEstimate
    gap_surviving: RateEstimate | None
    gap_vanishing: RateEstimate | None
    theory: dict
    vanishing: np.ndarray
    g_vanishing: float | None

    def relative_errors(self) -> dict[str, float]:
        """``|measured - theory| / theory`` for the imbalance and each non-empty class."""
        out = {
            "imbalance": abs(self.imbalance.rate - self.theory["imbalance"])
            / self.theory["imbalance"]
        }
        for key, est in (("surviving", self.gap_surviving), ("vanishing", self.gap_vanishing)):
            if est is not None:
                out[key] = abs(est.rate - self.theory[key]) / self.theory[key]
        return out


def flow_rates(result, objective=None, *, vanish_tol: float = 1e-6, **fit_options) -> FlowRates:
    r"""Measure the imbalance, gap and per-class gap rates of a flow and get the theory values.

    Parameters
    ----------
    result : FlowResult
        A recorded trajectory (dense ``t_eval`` helps: the fit needs several points per decade).
    objective : GatedObjective, optional
        Needed for :math:`D = 2` vanishing groups (the gradient norm at the end).
    vanish_tol : float, default=1e-6
        See :func:`classify_groups`; for ``D = 2`` groups outside the prox-step support at the
        end also count as vanishing.
    **fit_options
        Passed to :func:`measure_rate`.

    Returns
    -------
    FlowRates
    """
    t = result.t
    delta = result.imbalance
    # Floor of Delta: the integration error (about rtol times the squares that are subtracted,
    # injected while the state still moves) or, below it, a few ulps of those squares.
    sq = np.maximum(np.abs(delta) + result.gates**2, result.gates**2)  # max(||omega_j||^2, gamma^2)
    level = float(np.sqrt((sq[0] ** 2).sum()))
    rel = result.rtol if np.isfinite(result.rtol) else 0.0
    floor_imb = max(8 * np.finfo(float).eps, rel) * level
    imb = np.sqrt((delta**2).sum(axis=(-1, -2)))
    est_imb = measure_rate(t, imb, floor=floor_imb, **fit_options)
    est_gap = measure_rate(t, result.gap, **fit_options)
    vanishing = classify_groups(result.group_norms, vanish_tol=vanish_tol)
    if result.depth == 2 and result.support is not None:
        # Group lasso: a group whose limit is zero can vanish as slowly as exp(-2(lam - g) t) and
        # still be above any norm threshold at T; the prox-step support at T identifies it.
        vanishing = vanishing | ~np.asarray(result.support[-1], dtype=bool)
    est_s = (
        measure_rate(t, result.gap_groups[:, ~vanishing].sum(-1), **fit_options)
        if (~vanishing).any()
        else None
    )
    est_v = (
        measure_rate(t, result.gap_groups[:, vanishing].sum(-1), **fit_options)
        if vanishing.any()
        else None
    )
    g_min = None
    if vanishing.any() and objective is not None:
        w = objective.gating.collapse(result.params(-1))
        gnorm = objective.gating.groups.norms(objective.problem.grad(w))
        g_min = float(gnorm[vanishing].min())
    theory = theory_rates(result.depth, result.lam, g_min)
    return FlowRates(est_imb, est_gap, est_s, est_v, theory, vanishing, g_min)


@dataclass(frozen=True)
class HorizonAdvice:
    r"""Whether a flow's measured rates are asymptotic, and a horizon that should make them so.

    Attributes
    ----------
    asymptotic : bool
        Every measured rate is within ``tol`` of theory (relative).
    worst : str or None
        The rate furthest from theory (``"imbalance"``, ``"surviving"`` or ``"vanishing"``).
        ``None`` when every rate is within ``tol``.
    ratio : float or None
        Its measured / theory ratio (NaN: the fit failed).
    slowest_rate : float
        The smallest theory rate among the classes present (imbalance included).
    suggested_t_end : float
        :math:`T = \log(1/\mathrm{floor}) / r_{\min}`: the time at which the slowest mode
        has decayed by ``floor``, so that every fit window can reach its asymptotic part.
    """

    asymptotic: bool
    worst: str | None
    ratio: float | None
    slowest_rate: float
    suggested_t_end: float

    def message(self, t_end: float) -> str:
        """One line for the user (empty when the rates are asymptotic)."""
        if self.asymptotic:
            return ""
        what = (
            f"the {self.worst} rate is {self.ratio:.3g} x theory"
            if self.ratio == self.ratio
            else (f"the {self.worst} rate could not be fitted")
        )
        if t_end < self.suggested_t_end:
            return (
                f"T = {t_end:g} is too short for the asymptotic rates ({what}; "
                "docs/theory.md [O-convergence]): try --t-end "
                f"{math.ceil(self.suggested_t_end):d} (slowest theory rate "
                f"{self.slowest_rate:.4g})"
            )
        return (
            f"{what} although T = {t_end:g} reaches the floor of the slowest rate "
            "(docs/theory.md [O-gap-rate]); check the fit windows"
        )


def horizon_advice(rates: FlowRates, *, tol: float = 0.02, floor: float = 1e-12) -> HorizonAdvice:
    r"""Check that the measured rates of a flow are asymptotic, and suggest a horizon.

    The rates of docs/theory.md [T-imbalance-flow], [T-rate-surviving], [T-rate-vanishing] and
    [T-rate-d2] are asymptotic: a fit over a pre-asymptotic window differs from them. The
    suggested horizon lets the slowest theory rate :math:`r_{\min}` decay by ``floor``:
    :math:`T = \log(1/\mathrm{floor})/r_{\min}`.

    Examples
    --------
    >>> est = RateEstimate(-0.192, 0.0, 1.0, (0.0, 40.0), 100)
    >>> exact = RateEstimate(-0.4, 0.0, 1.0, (0.0, 40.0), 100)
    >>> rates = FlowRates(exact, est, est, None, {"imbalance": 0.4, "surviving": 0.2667},
    ...                   np.zeros(3, bool), None)
    >>> adv = horizon_advice(rates)
    >>> adv.asymptotic, adv.worst, round(adv.suggested_t_end)
    (False, 'surviving', 104)
    """
    errors = {}
    for key, est in (
        ("imbalance", rates.imbalance),
        ("surviving", rates.gap_surviving),
        ("vanishing", rates.gap_vanishing),
    ):
        if est is not None and rates.theory.get(key):
            ratio = est.rate / rates.theory[key] if est.valid else float("nan")
            errors[key] = ratio
    present = [rates.theory[k] for k in errors] or [rates.theory["imbalance"]]
    slowest = float(min(present))
    bad = {k: r for k, r in errors.items() if not abs(r - 1.0) <= tol}
    worst = (
        max(bad, key=lambda k: abs(bad[k] - 1.0) if bad[k] == bad[k] else np.inf) if bad else None
    )
    return HorizonAdvice(
        not bad,
        worst,
        None if worst is None else float(bad[worst]),
        slowest,
        float(np.log(1.0 / floor) / slowest),
    )
