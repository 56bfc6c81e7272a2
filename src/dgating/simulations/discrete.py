r"""Discrete time: gradient descent and minibatch SGD on the gated objective, step :math:`\eta`.

One step with a (minibatch) gradient :math:`\hat g_j` of :math:`L_0` at
:math:`w = \omega\odot\Gamma` and coupled weight decay :math:`2\lambda/D`:

.. math::
    \omega_j^+ = (1 - \tfrac{2\eta\lambda}{D})\,\omega_j - \eta P_j \hat g_j, \qquad
    \gamma_{j,d}^+ = (1 - \tfrac{2\eta\lambda}{D})\,\gamma_{j,d} - \eta P_{j,-d}
    \langle \hat g_j, \omega_j\rangle .

Expanding :math:`\|\omega_j^+\|^2 - (\gamma_{j,d}^+)^2`, the cross terms cancel
(:math:`\langle\omega_j, P_j\hat g_j\rangle =
\gamma_{j,d} P_{j,-d}\langle\hat g_j,\omega_j\rangle`), which gives the exact recursion of
docs/theory.md [T-sgd]:

.. math::
    \Delta_{j,d}^+ = \big(1 - \tfrac{2\eta\lambda}{D}\big)^2 \Delta_{j,d}
    + \eta^2\big(\|P_j \hat g_j\|^2 - (P_{j,-d}\langle \hat g_j, \omega_j\rangle)^2\big).

For a scalar group (:math:`p_j = 1`) the last term is :math:`-\eta^2 \hat g_j^2 P_{j,-d}^2
\Delta_{j,d}`, so the recursion is purely multiplicative with factor
:math:`f = (1 - 2\eta\lambda/D)^2 - \eta^2 \hat g_j^2 P_{j,-d}^2 \le (1 - 2\eta\lambda/D)^2`. Its
limits are derived in :func:`dgating.theory.balancedness.sgd_limit_factors`: for a vanishing group
and :math:`D \ge 3` the other gates vanish, :math:`P_{j,-d} \to 0` and :math:`f \to (1 -
2\eta\lambda/D)^2`; for :math:`D = 2` there is no other gate (:math:`P_{j,-d} = 1`) and under
full-batch GD :math:`f \to (1 - \eta\lambda)^2 - \eta^2 \|g_j^*\|^2` (under minibatch SGD the
factor of each step keeps its own :math:`\hat g_j`); for a surviving group under full-batch GD
:math:`f \to 1 - 4\eta\lambda/D` (the explicit Euler factor of the flow rate :math:`4\lambda/D`),
since :math:`P_{j,-d}^2 g_j^2 \to (2\lambda/D)^2` at a balanced stationary point. For vector groups
the :math:`\eta^2` term is :math:`P_{j,-d}^2(\gamma_{j,d}^2\|\hat g_j\|^2 - \langle\hat
g_j,\omega_j\rangle^2)`, which is :math:`\ge 0` near balance (Cauchy-Schwarz): minibatch noise keeps
a steady-state imbalance of order :math:`\eta` (:func:`steady_state_imbalance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import InvalidParameterError, check_positive
from ..gating import GatedParams, products_excluding
from ..objectives import GatedObjective
from ..problem import GroupedProblem
from .rates import RateEstimate, measure_rate

__all__ = [
    "DiscreteResult",
    "imbalance_contraction",
    "run_sgd",
    "steady_state_imbalance",
]


@dataclass(frozen=True)
class DiscreteResult:
    r"""A GD/SGD run on the gated objective with the per-step check of the exact recursion.

    Attributes
    ----------
    steps : ndarray of int, shape (K + 1,)
        Step indices ``0..K``.
    omega : ndarray, shape (K + 1, n_features)
    gates : ndarray, shape (K + 1, n_groups, depth - 1)
    imbalance : ndarray, shape (K + 1, n_groups, depth - 1)
        :math:`\Delta_{j,d}` after each step, from the iterates.
    predicted : ndarray, shape (K, n_groups, depth - 1)
        The right-hand side of the recursion evaluated at step ``k`` with the gradient used.
    recursion_error : ndarray, shape (K,)
        :math:`\max_{j,d} |\Delta^{(k+1)} - \mathrm{predicted}^{(k)}| / \max(1, \max(\|\omega_j\|^2,
        \gamma_{j,d}^2))`: rounding only (about :math:`10^{-16}`) if the recursion holds.
    factor : ndarray, shape (K, n_groups, depth - 1)
        Scalar groups: the multiplicative factor
        :math:`(1 - 2\eta\lambda/D)^2 - \eta^2 \hat g_j^2 P_{j,-d}^2` of each step (``nan`` for
        vector groups).
    objective : ndarray, shape (K + 1,)
        Full-batch :math:`L` at the iterates.
    eta, lam : float
    depth : int
    batch_size : int or None
        ``None`` for full-batch GD.
    """

    steps: np.ndarray
    omega: np.ndarray
    gates: np.ndarray
    imbalance: np.ndarray
    predicted: np.ndarray
    recursion_error: np.ndarray
    factor: np.ndarray
    objective: np.ndarray
    eta: float
    lam: float
    depth: int
    batch_size: int | None

    @property
    def decay_factor(self) -> float:
        r"""The first-order contraction :math:`c = (1 - 2\eta\lambda/D)^2` of the recursion (the
        factor of vanishing scalar groups for :math:`D \ge 3` only; see :attr:`factor`)."""
        return (1.0 - 2.0 * self.eta * self.lam / self.depth) ** 2


def run_sgd(
    objective: GatedObjective,
    params0: GatedParams,
    *,
    eta: float,
    n_steps: int,
    batch_size: int | None = None,
    seed: int = 0,
) -> DiscreteResult:
    r"""Run GD (``batch_size=None``) or minibatch SGD with step ``eta`` on :math:`L`.

    Parameters
    ----------
    objective : GatedObjective
        :math:`L`; minibatches need a :class:`~dgating.problem.GroupedProblem`.
    params0 : GatedParams
        Starting point.
    eta : float
        Step :math:`\eta > 0`.
    n_steps : int
        :math:`K`.
    batch_size : int, optional
        Samples per step, drawn without replacement with ``numpy.random.default_rng(seed)``;
        the minibatch loss is the mean over the batch (the same normalisation as :math:`L_0`).
    seed : int, default=0

    Returns
    -------
    DiscreteResult

    Examples
    --------
    >>> import numpy as np
    >>> from dgating import GatedObjective, GroupedProblem
    >>> rng = np.random.default_rng(0)
    >>> prob = GroupedProblem(rng.normal(size=(40, 4)), rng.normal(size=40), np.array([0, 0, 1, 1]))
    >>> obj = GatedObjective(prob, depth=3, lam=0.1)
    >>> p0 = GatedParams(rng.normal(size=4), rng.normal(size=(2, 2)))
    >>> res = run_sgd(obj, p0, eta=0.05, n_steps=50, batch_size=8)
    >>> bool(res.recursion_error.max() < 1e-12)
    True
    """
    eta = check_positive(eta, "eta")
    n_steps = check_positive(n_steps, "n_steps", integer=True)
    problem = objective.problem
    if batch_size is not None:
        batch_size = check_positive(batch_size, "batch_size", integer=True)
        if not isinstance(problem, GroupedProblem):
            raise InvalidParameterError(
                f"`batch_size` needs a GroupedProblem (sample rows of X); got "
                f"{type(problem).__name__}. Use batch_size=None for full-batch GD."
            )
        if batch_size > problem.n_samples:
            raise InvalidParameterError(
                f"`batch_size` must be <= n_samples = {problem.n_samples}; got {batch_size}."
            )
    gating = objective.gating
    groups = gating.groups
    params = gating.check(params0)
    rng = np.random.default_rng(seed)
    wd = objective.weight_decay
    shrink = 1.0 - eta * wd
    scalar = groups.sizes == 1
    pen = groups.penalised.astype(float)
    K = n_steps
    omegas = np.empty((K + 1, groups.n_features))
    gates = np.empty((K + 1, groups.n_groups, gating.n_gates))
    predicted = np.empty((K, groups.n_groups, gating.n_gates))
    factor = np.full((K, groups.n_groups, gating.n_gates), np.nan)
    objective_values = np.empty(K + 1)
    omega, gam = params.omega.copy(), params.gates.copy()
    for k in range(K + 1):
        omegas[k], gates[k] = omega, gam
        objective_values[k] = objective.value(GatedParams(omega, gam))
        if k == K:
            break
        w = omega * groups.expand(gam.prod(axis=1))
        if batch_size is None:
            g = problem.grad(w)
        else:
            rows = rng.choice(problem.n_samples, size=batch_size, replace=False)
            Xb = problem.X[rows]
            g = Xb.T @ problem.loss.derivative(Xb @ w, problem.y[rows])
        prod = gam.prod(axis=1)
        pminus = products_excluding(gam, 1)
        inner = groups.group_sums(g * omega)
        delta = groups.sq_norms(omega)[:, None] - gam**2
        pg_sq = prod**2 * groups.sq_norms(g)
        noise = pg_sq[:, None] - (pminus * inner[:, None]) ** 2
        predicted[k] = shrink**2 * delta + eta**2 * noise
        gsq = groups.sq_norms(g)
        factor[k, scalar] = shrink**2 - eta**2 * gsq[scalar, None] * pminus[scalar] ** 2
        new_omega = omega - eta * (groups.expand(prod) * g + wd * pen * omega)
        new_gates = gam - eta * (pminus * inner[:, None] + wd * gam)
        omega, gam = new_omega, new_gates
    sq = groups.sq_norms(omegas)  # (K+1, J)
    imbalance = sq[..., None] - gates**2
    scale = np.maximum(1.0, np.maximum(sq[1:, :, None], gates[1:] ** 2))
    err = np.abs(imbalance[1:] - predicted) / scale
    return DiscreteResult(
        steps=np.arange(K + 1),
        omega=omegas,
        gates=gates,
        imbalance=imbalance,
        predicted=predicted,
        recursion_error=err.reshape(K, -1).max(axis=1) if err.size else np.zeros(K),
        factor=factor,
        objective=objective_values,
        eta=eta,
        lam=objective.lam,
        depth=objective.depth,
        batch_size=batch_size,
    )


def imbalance_contraction(result: DiscreteResult, j: int, d: int = 0, **fit_options) -> float:
    r"""Measured per-step contraction of :math:`|\Delta_{j,d}|`: :math:`\exp` of the fitted slope of
    :math:`\log|\Delta_{j,d}^{(k)}|` against :math:`k` (window chosen by
    :func:`~dgating.simulations.rates.measure_rate`).

    Compare with the limit factors of :func:`dgating.theory.balancedness.sgd_limit_factors`
    (vanishing scalar groups: :math:`(1 - 2\eta\lambda/D)^2` for :math:`D \ge 3`,
    :math:`(1 - \eta\lambda)^2 - \eta^2\|g_j^*\|^2` for :math:`D = 2` under full-batch GD).
    """
    est: RateEstimate = measure_rate(
        result.steps.astype(float), np.abs(result.imbalance[:, j, d]), **fit_options
    )
    return float(np.exp(est.slope))


def steady_state_imbalance(
    objective: GatedObjective,
    params0: GatedParams,
    etas: np.ndarray,
    *,
    horizon: float,
    batch_size: int,
    seed: int = 0,
    tail: float = 0.5,
) -> dict[str, np.ndarray]:
    r"""Steady-state imbalance of minibatch SGD as a function of the step :math:`\eta`.

    Every run starts from the *balanced* lift of the weights of ``params0`` (so any imbalance is
    created by the minibatch noise) and lasts ``ceil(horizon / eta)`` steps (the same flow time);
    the result averages :math:`\max_{j,d}|\Delta_{j,d}|` over the last ``tail`` fraction of the
    steps. Near balance the recursion's fixed point is
    :math:`\Delta^\ast \approx \eta\, \mathbb E[\text{noise term}]\, D / (4\lambda)`: linear in
    :math:`\eta`.

    Returns
    -------
    dict
        ``"eta"`` (m,), ``"imbalance"`` (m,) and ``"slope"`` (the fitted log-log slope, about 1).
    """
    etas = np.asarray(etas, dtype=float)
    horizon = check_positive(horizon, "horizon")
    balanced = objective.gating.lift(objective.gating.collapse(objective.gating.check(params0)))
    out = np.empty(etas.size)
    for i, eta in enumerate(etas):
        n_steps = int(np.ceil(horizon / eta))
        res = run_sgd(
            objective, balanced, eta=float(eta), n_steps=n_steps, batch_size=batch_size, seed=seed
        )
        start = int((1.0 - tail) * n_steps)
        out[i] = float(np.abs(res.imbalance[start:]).max(axis=(1, 2)).mean())
    slope = float(np.polyfit(np.log(etas), np.log(out), 1)[0]) if etas.size > 1 else np.nan
    return {"eta": etas, "imbalance": out, "slope": np.array(slope)}
