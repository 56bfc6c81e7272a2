r"""The two objectives of D-Gating.

* :class:`PenalisedObjective`, non-smooth:
  :math:`L_w(w) = L_0(w) + \lambda \sum_j \|w_{G_j}\|^{2/D}`.
* :class:`GatedObjective`, smooth: :math:`L(\omega, \Gamma) = L_0(\omega \odot \Gamma) +
  \frac{\lambda}{D}(\|\omega\|^2 + \|\Gamma\|_F^2)`.

With :math:`w = \mathrm{collapse}(\omega, \Gamma)`, :math:`L \ge L_w(w)` with equality iff every
group is balanced (THEORY.md 2.1); :meth:`GatedObjective.gap` returns :math:`L - L_w`.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_lam
from .gating import DGating, GatedParams
from .penalties import GroupLqPenalty
from .problem import Problem

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
        block of group :math:`j` is :math:`\lambda q \|w_j\|^{q-2}(I + (q-2) u u^\top)`.
        """
        idx = np.flatnonzero(self.support_mask(w))
        if hasattr(self.problem, "X"):
            c = self.problem.loss.curvature(self.problem.X @ w, self.problem.y)
            Xs = self.problem.X[:, idx]
            H = Xs.T @ (c[:, None] * Xs)
        else:
            H = self.problem.hessian(w)[np.ix_(idx, idx)]
        labels = self.groups.labels[idx]
        for j in np.unique(labels[labels >= 0]):
            loc = np.flatnonzero(labels == j)
            H[np.ix_(loc, loc)] += self.penalty.hessian_block(w[idx[loc]])
        return 0.5 * (H + H.T), idx


class GatedObjective:
    r"""Smooth gated objective :math:`L(\omega, \Gamma) = L_0(w) +
    \frac{\lambda}{D}(\|\omega_{\mathrm{pen}}\|^2 + \|\Gamma\|_F^2)`,
    :math:`w = \omega \odot \prod_d \gamma_{\cdot, d}`.

    Gradients (THEORY.md sec. 1):

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
        """Dense Hessian in the packed coordinates, restricted to the indices ``idx`` (all by
        default), shape ``(len(idx), len(idx))``; one :meth:`hvp` per column."""
        n = self.gating.n_params
        idx = np.arange(n) if idx is None else np.asarray(idx)
        cols = []
        for i in idx:
            e = np.zeros(n)
            e[i] = 1.0
            cols.append(self.gating.pack(self.hvp(params, self.gating.unpack(e)))[idx])
        H = np.stack(cols, axis=1) if cols else np.zeros((0, 0))
        return 0.5 * (H + H.T)

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
        r""":math:`L - L_w = \lambda \sum_j (AM_j - GM_j) \ge 0` (THEORY.md 2.5)."""
        return self.lam * float(
            np.sum(self.gating.penalty_per_group(params) - self.gating.geometric_means(params))
        )
