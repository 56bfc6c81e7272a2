r"""The two objectives of D-Gating.

* :class:`PenalisedObjective`, non-smooth:
  :math:`L_w(w) = L_0(w) + \lambda \sum_j \|w_{G_j}\|^{2/D}`.
* :class:`GatedObjective`, smooth: :math:`L(\omega, \Gamma) = L_0(\omega \odot \Gamma) +
  \frac{\lambda}{D}(\|\omega\|^2 + \|\Gamma\|_F^2)`.

With :math:`w = \mathrm{collapse}(\omega, \Gamma)`, :math:`L \ge L_w(w)` with equality iff every
group is balanced (docs/theory.md [T-variational]); :meth:`GatedObjective.gap` returns :math:`L -
L_w`.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_lam
from .gating import DGating, GatedParams, products_excluding
from .penalties import GroupLqPenalty
from .problem import GroupedProblem, Problem

__all__ = ["GatedObjective", "PenalisedObjective"]


class PenalisedObjective:
    r"""Non-smooth objective :math:`L_w(w) = L_0(w) + \lambda \sum_j \|w_{G_j}\|_2^{2/D}`.

    It has no gradient method on purpose: use :meth:`grad_on_support` (the gradient of the smooth
    restriction to the non-zero groups) or :meth:`residuals` (first-order stationarity).

    Parameters
    ----------
    problem : Problem
        Supplies :math:`L_0` and the grouping.
    depth : int
        :math:`D \ge 2`; :math:`q = 2/D`.
    lam : float
        :math:`\lambda \ge 0`.
    """

    def __init__(self, problem: Problem, depth: int, lam: float) -> None:
        self.problem = problem
        self.penalty = GroupLqPenalty.from_depth(lam, depth)
        self.depth = round(2 / self.penalty.q)
        self.lam = self.penalty.lam
        groups = problem.groups
        g0 = problem.grad(np.zeros(problem.n_features))
        free = g0[~groups.penalised]
        top = max(float(groups.norms(g0).max(initial=0.0)), float(np.sqrt(free @ free)))
        #: Gradient scale used to make residuals relative: max(lam, max_j ||grad_j L0(0)||).
        self.scale = max(self.lam, top) or 1.0

    @property
    def groups(self):
        return self.problem.groups

    def value(self, w: np.ndarray) -> float:
        return self.problem.value(w) + self.penalty.value(w, self.groups)

    def grad_on_support(self, w: np.ndarray) -> np.ndarray:
        r"""Gradient of :math:`L_w` on the non-zero groups and unpenalised features (0 elsewhere).

        .. math:: g_j + \lambda q \|w_j\|^{q-2} w_j .
        """
        g = self.problem.grad(w)
        norms = self.groups.norms(w)
        nz = norms > 0
        coef = np.zeros_like(norms)
        coef[nz] = self.lam * self.penalty.q * norms[nz] ** (self.penalty.q - 2.0)
        out = g + self.groups.expand(coef, fill=0.0) * w
        out[self.groups.penalised & (self.groups.expand(nz.astype(float), fill=1.0) == 0)] = 0.0
        return out

    def residuals(self, w: np.ndarray, grad: np.ndarray | None = None) -> np.ndarray:
        """Per-group first-order residuals, see :meth:`GroupLqPenalty.residuals`."""
        grad = self.problem.grad(w) if grad is None else grad
        return self.penalty.residuals(w, grad, self.groups)

    def stationarity(self, w: np.ndarray, grad: np.ndarray | None = None) -> float:
        r"""Relative first-order stationarity :math:`\max_j \mathrm{res}_j / s`, with
        :math:`s = \max(\lambda, \max_j \|\nabla_j L_0(0)\|)` (:attr:`scale`)."""
        return float(self.residuals(w, grad).max()) / self.scale

    def support_mask(self, w: np.ndarray) -> np.ndarray:
        """Features in a non-zero group or unpenalised, shape ``(n_features,)`` of bool."""
        nz = self.groups.norms(w) > 0
        return self.groups.expand(nz.astype(float), fill=1.0) > 0

    def reduced_hessian(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Hessian of :math:`L_0 + \lambda\sum_j\|w_j\|^q` restricted to the support.

        Returns ``(H, idx)``: ``H`` of shape ``(k, k)`` on the feature indices ``idx``; the penalty
        block of group :math:`j` is :math:`\lambda q \|w_j\|^{q-2}(I + (q-2) u_j u_j^\top)`,
        :math:`u_j = w_j / \|w_j\|`, added for all groups in one vectorised step.
        """
        idx = np.flatnonzero(self.support_mask(w))
        if isinstance(self.problem, GroupedProblem):
            H = self.problem.hessian(w, idx)
        else:
            H = self.problem.hessian(w)[np.ix_(idx, idx)]
        groups, q = self.groups, self.penalty.q
        norms = groups.norms(w)
        safe = np.where(norms > 0, norms, 1.0)  # zero groups are outside idx
        coef = groups.expand(self.lam * q * safe ** (q - 2.0), fill=0.0)[idx]
        u = (w / groups.expand(safe))[idx]
        labels = groups.labels[idx]
        same = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
        H = H + np.diag(coef) + (q - 2.0) * same * np.outer(coef * u, u)
        return 0.5 * (H + H.T), idx


class GatedObjective:
    r"""Smooth gated objective :math:`L(\omega, \Gamma) = L_0(w) +
    \frac{\lambda}{D}(\|\omega_{\mathrm{pen}}\|^2 + \|\Gamma\|_F^2)`,
    :math:`w = \omega \odot \prod_d \gamma_{\cdot, d}`.

    Gradients (docs/theory.md [C-conventions]):

    .. math::
        \partial_{\omega_{G_j}} L = P_j g_j + \tfrac{2\lambda}{D}\omega_{G_j}, \qquad
        \partial_{\gamma_{j,d}} L = P_{j,-d}\langle g_j, \omega_{G_j}\rangle
        + \tfrac{2\lambda}{D}\gamma_{j,d}.

    Parameters
    ----------
    problem : Problem
        Supplies :math:`L_0` and the grouping.
    depth : int
        :math:`D \ge 2`.
    lam : float
        :math:`\lambda \ge 0`; in SGD terms, coupled weight decay ``2 * lam / depth``.

    Examples
    --------
    >>> import numpy as np
    >>> from dgating.problem import GroupedProblem
    >>> prob = GroupedProblem(np.eye(2), np.array([1.0, 2.0]), np.array([0, 1]))
    >>> obj = GatedObjective(prob, depth=3, lam=0.1)
    >>> params = obj.gating.lift(np.array([0.5, 1.0]))
    >>> bool(abs(obj.gap(params)) < 1e-15)  # balanced: L = L_w
    True
    """

    def __init__(self, problem: Problem, depth: int, lam: float) -> None:
        self.problem = problem
        self.gating = DGating(depth, problem.groups)
        self.depth = self.gating.depth
        self.lam = check_lam(lam)
        self.penalised_objective = PenalisedObjective(problem, self.depth, self.lam)

    @property
    def weight_decay(self) -> float:
        r"""Coupled weight decay :math:`2\lambda/D` on :math:`\omega` and :math:`\Gamma`."""
        return 2.0 * self.lam / self.depth

    def _decay_mask(self) -> np.ndarray:
        return self.gating.groups.penalised.astype(float)

    def value(self, params: GatedParams) -> float:
        return self.problem.value(self.gating.collapse(params)) + self.lam * self.gating.penalty(
            params
        )

    def value_and_grad(self, params: GatedParams) -> tuple[float, GatedParams]:
        w = self.gating.collapse(params)
        val, g = self.problem.value_and_grad(w)
        pull = self.gating.pullback(params, g)
        wd = self.weight_decay
        grad = GatedParams(
            pull.omega + wd * self._decay_mask() * params.omega, pull.gates + wd * params.gates
        )
        return val + self.lam * self.gating.penalty(params), grad

    def grad(self, params: GatedParams) -> GatedParams:
        return self.value_and_grad(params)[1]

    def hvp(self, params: GatedParams, direction: GatedParams) -> GatedParams:
        r"""Hessian-vector product :math:`\nabla^2 L\, v = J^\top \nabla^2 L_0 J v +
        \sum_i g_i \nabla^2 w_i\, v + \tfrac{2\lambda}{D} v`."""
        w = self.gating.collapse(params)
        g = self.problem.grad(w)
        hjv = self.problem.hvp(w, self.gating.pushforward(params, direction))
        gn = self.gating.pullback(params, hjv)
        curv = self.gating.pullback_derivative(params, g, direction)
        wd = self.weight_decay
        return GatedParams(
            gn.omega + curv.omega + wd * self._decay_mask() * direction.omega,
            gn.gates + curv.gates + wd * direction.gates,
        )

    def hessian(self, params: GatedParams, idx: np.ndarray | None = None) -> np.ndarray:
        r"""Dense Hessian of :math:`L` in the packed coordinates ``[omega, gates.ravel()]``,
        restricted to the indices ``idx`` (all by default).

        Assembled from its three parts (:meth:`hvp` is the matrix-free twin):

        .. math::
            \nabla^2 L = J^\top \nabla^2 L_0(w)\, J + \sum_i g_i \nabla^2 w_i
            + \tfrac{2\lambda}{D} \operatorname{diag}(\text{penalised}),

        with the Jacobian :math:`J` of :math:`w_i = \omega_i P_j` (:math:`\partial_{\omega_i} =
        P_j`, :math:`\partial_{\gamma_{j,d}} = \omega_i P_{j,-d}`) and the non-zero second
        derivatives :math:`\partial^2_{\omega_i \gamma_{j,d}} w_i = P_{j,-d}`,
        :math:`\partial^2_{\gamma_{j,d}\gamma_{j,e}} w_i = \omega_i P_{j,-d,-e}` (:math:`d \ne e`).
        """
        gating, problem = self.gating, self.problem
        groups, k = gating.groups, gating.n_gates
        p, n_groups = groups.n_features, groups.n_groups
        w = gating.collapse(params)
        g = problem.grad(w)
        p1 = products_excluding(params.gates, 1)  # P_{j,-d}, (J, k)
        p2 = products_excluding(params.gates, 2)  # P_{j,-d,-e}, (J, k, k), 0 for d = e
        member = groups.labels[:, None] == np.arange(n_groups)  # (p, J); unpenalised: all False
        d_gates = ((params.omega[:, None] * member)[:, :, None] * p1).reshape(p, n_groups * k)
        jac = np.hstack([np.diag(groups.expand(params.gates.prod(axis=1))), d_gates])
        curv = np.zeros((gating.n_params, gating.n_params))
        curv[:p, p:] = ((g[:, None] * member)[:, :, None] * p1).reshape(p, n_groups * k)
        curv[p:, :p] = curv[:p, p:].T
        inner = groups.group_sums(g * params.omega)  # <g_j, omega_j>
        blocks = inner[:, None, None] * p2  # gate-gate blocks, one per group
        curv[p:, p:] = np.einsum("jde,jl->jdle", blocks, np.eye(n_groups)).reshape(
            n_groups * k, n_groups * k
        )
        decay = self.weight_decay * np.concatenate([groups.penalised, np.ones(n_groups * k)])
        H = jac.T @ problem.hessian(w) @ jac + curv + np.diag(decay)
        H = 0.5 * (H + H.T)
        return H if idx is None else H[np.ix_(idx, idx)]

    def fun_and_jac(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient on the packed vector ``z`` (for scipy optimisers)."""
        val, grad = self.value_and_grad(self.gating.unpack(z))
        return val, self.gating.pack(grad)

    def vector_field(self, t: float, z: np.ndarray) -> np.ndarray:
        """Gradient-flow right-hand side :math:`\\dot z = -\\nabla L(z)` (``t`` unused)."""
        return -self.fun_and_jac(z)[1]

    def penalised_value(self, params: GatedParams) -> float:
        r""":math:`L_w` at the collapsed weights."""
        return self.penalised_objective.value(self.gating.collapse(params))

    def gap(self, params: GatedParams) -> float:
        r""":math:`L - L_w = \lambda \sum_j (AM_j - GM_j) \ge 0` (docs/theory.md [T-gap])."""
        return self.lam * float(
            np.sum(self.gating.penalty_per_group(params) - self.gating.geometric_means(params))
        )
