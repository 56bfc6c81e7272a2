r"""The D-Gating parametrisation :math:`w_{G_j} = \omega_{G_j} \prod_{d=1}^{D-1} \gamma_{j,d}`.

Notation (docs/theory.md [C-conventions]): :math:`P_j = \prod_d \gamma_{j,d}`,
:math:`P_{j,-d} = \prod_{d' \ne d} \gamma_{j,d'}`, imbalance
:math:`\Delta_{j,d} = \|\omega_{G_j}\|^2 - \gamma_{j,d}^2`. Unpenalised features (label ``-1``)
are neither gated nor penalised: there :math:`w_i = \omega_i`.

All products are formed by masking, never by division, so zero gates are handled exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import InvalidParameterError, check_array, check_depth
from .groups import Groups

__all__ = ["DGating", "GatedParams"]


@dataclass(frozen=True)
class GatedParams:
    r"""Gated parameters :math:`(\omega, \Gamma)`.

    Parameters
    ----------
    omega : ndarray, shape (n_features,)
        :math:`\omega`; on unpenalised features it is the weight itself.
    gates : ndarray, shape (n_groups, depth - 1)
        :math:`\Gamma = (\gamma_{j,d})`.
    """

    omega: np.ndarray
    gates: np.ndarray


def products_excluding(gates: np.ndarray, n_excluded: int) -> np.ndarray:
    """Products of the gates of each group with ``n_excluded`` (1 or 2) of them left out.

    Returns shape ``(J, k)`` for one excluded index and ``(J, k, k)`` for two (zero on the diagonal,
    where the same gate would be excluded twice).
    """
    k = gates.shape[1]
    eye = np.eye(k, dtype=bool)
    if n_excluded == 1:
        masked = np.where(eye[None], 1.0, gates[:, None, :])
        return masked.prod(axis=-1)
    keep = ~(eye[:, None, :] | eye[None, :, :])  # (k, k, k): drop d and d'
    masked = np.where(keep[None], gates[:, None, None, :], 1.0)
    return np.where(eye[None], 0.0, masked.prod(axis=-1))


class DGating:
    r"""Depth-:math:`D` gating of a grouping: collapse, pull-back, balanced lift, imbalances.

    Parameters
    ----------
    depth : int
        :math:`D \ge 2`; each group gets :math:`D-1` scalar gates.
    groups : Groups or ndarray of int, shape (n_features,)
        The grouping (label ``-1``: ungated).

    Examples
    --------
    >>> import numpy as np
    >>> gating = DGating(3, np.array([0, 0, 1]))
    >>> params = gating.lift(np.array([3.0, 4.0, -8.0]))
    >>> np.allclose(gating.collapse(params), [3.0, 4.0, -8.0])
    True
    >>> float(np.abs(gating.imbalance(params)).max()) < 1e-12
    True
    """

    def __init__(self, depth: int, groups: Groups | np.ndarray) -> None:
        self.depth = check_depth(depth)
        self.groups = groups if isinstance(groups, Groups) else Groups(groups)

    @property
    def n_gates(self) -> int:
        """:math:`D - 1`."""
        return self.depth - 1

    @property
    def n_params(self) -> int:
        """Length of the packed vector: ``n_features + n_groups * (depth - 1)``."""
        return self.groups.n_features + self.groups.n_groups * self.n_gates

    def check(self, params: GatedParams) -> GatedParams:
        """Validate the shapes and finiteness of ``params``; return float64 copies."""
        omega = check_array(params.omega, "omega", shape=(self.groups.n_features,))
        gates = check_array(params.gates, "gates", shape=(self.groups.n_groups, self.n_gates))
        return GatedParams(omega, gates)

    def pack(self, params: GatedParams) -> np.ndarray:
        """Flatten to ``z = [omega, gates.ravel()]``, shape ``(n_params,)``."""
        return np.concatenate([params.omega, params.gates.ravel()])

    def unpack(self, z: np.ndarray) -> GatedParams:
        """Inverse of :meth:`pack`."""
        z = np.asarray(z)
        if z.shape != (self.n_params,):
            raise InvalidParameterError(
                f"`z` must have shape (n_params,) = ({self.n_params},); got {z.shape}."
            )
        p = self.groups.n_features
        return GatedParams(z[:p], z[p:].reshape(self.groups.n_groups, self.n_gates))

    def collapse(self, params: GatedParams) -> np.ndarray:
        r"""The weights :math:`w = \omega \odot (P_j)_{j(i)}`, shape ``(n_features,)``."""
        return params.omega * self.groups.expand(params.gates.prod(axis=1))

    def pullback(self, params: GatedParams, grad_w: np.ndarray) -> GatedParams:
        r"""Chain rule: the gradient in :math:`(\omega, \Gamma)` from :math:`g = \nabla_w L_0`.

        .. math::
            \partial_{\omega_{G_j}} = P_j\, g_j, \qquad
            \partial_{\gamma_{j,d}} = P_{j,-d} \langle g_j, \omega_{G_j} \rangle .
        """
        d_omega = self.groups.expand(params.gates.prod(axis=1)) * grad_w
        inner = self.groups.group_sums(grad_w * params.omega)
        d_gates = products_excluding(params.gates, 1) * inner[:, None]
        return GatedParams(d_omega, d_gates)

    def pullback_derivative(
        self, params: GatedParams, grad_w: np.ndarray, direction: GatedParams
    ) -> GatedParams:
        r"""Derivative of :meth:`pullback` in ``direction`` with :math:`g` held fixed.

        This is the curvature term :math:`\sum_i g_i \nabla^2 w_i\, v` of the gated Hessian.
        """
        g = self.groups
        p_minus = products_excluding(params.gates, 1)  # (J, k)
        p_minus2 = products_excluding(params.gates, 2)  # (J, k, k)
        d_prod = (p_minus * direction.gates).sum(axis=1)  # directional derivative of P_j
        d_omega = g.expand(d_prod, fill=0.0) * grad_w
        inner = g.group_sums(grad_w * params.omega)
        d_inner = g.group_sums(grad_w * direction.omega)
        d_gates = p_minus * d_inner[:, None] + inner[:, None] * np.einsum(
            "jde,je->jd", p_minus2, direction.gates
        )
        return GatedParams(d_omega, d_gates)

    def pushforward(self, params: GatedParams, direction: GatedParams) -> np.ndarray:
        r"""Jacobian-vector product :math:`\mathrm{d}w = J_{(\omega,\Gamma)} v`, shape (p,)."""
        g = self.groups
        d_prod = (products_excluding(params.gates, 1) * direction.gates).sum(axis=1)
        return direction.omega * g.expand(params.gates.prod(axis=1)) + params.omega * g.expand(
            d_prod, fill=0.0
        )

    def penalty(self, params: GatedParams) -> float:
        r""":math:`\frac{1}{D}(\|\omega_{\mathrm{pen}}\|^2 + \|\Gamma\|_F^2)` (multiply by
        :math:`\lambda` for the gated penalty)."""
        om = params.omega[self.groups.penalised]
        return float(om @ om + np.sum(params.gates**2)) / self.depth

    def penalty_per_group(self, params: GatedParams) -> np.ndarray:
        r"""Arithmetic means
        :math:`AM_j = \frac{1}{D}(\|\omega_{G_j}\|^2 + \sum_d \gamma_{j,d}^2)`, shape (J,)."""
        return (self.groups.sq_norms(params.omega) + np.sum(params.gates**2, axis=1)) / self.depth

    def geometric_means(self, params: GatedParams) -> np.ndarray:
        r""":math:`GM_j = (\|\omega_{G_j}\|^2 \prod_d \gamma_{j,d}^2)^{1/D} = \|w_j\|^{2/D}`."""
        return self.groups.norms(self.collapse(params)) ** (2.0 / self.depth)

    def imbalance(self, params: GatedParams) -> np.ndarray:
        r"""Imbalances :math:`\Delta_{j,d} = \|\omega_{G_j}\|^2 - \gamma_{j,d}^2`,
        shape ``(n_groups, depth-1)``."""
        return self.groups.sq_norms(params.omega)[:, None] - params.gates**2

    def gate_imbalance(self, params: GatedParams) -> np.ndarray:
        r""":math:`\gamma_{j,d}^2 - \gamma_{j,d'}^2`, shape ``(n_groups, depth-1, depth-1)``."""
        sq = params.gates**2
        return sq[:, :, None] - sq[:, None, :]

    def relative_imbalance(self, params: GatedParams) -> float:
        r""":math:`\max_{j,d} |\Delta_{j,d}| / \max(1, \|\omega_{G_j}\|^2)` (0 without groups)."""
        if self.groups.n_groups == 0:
            return 0.0
        scale = np.maximum(1.0, self.groups.sq_norms(params.omega))
        return float(np.max(np.abs(self.imbalance(params)) / scale[:, None]))

    def lift(self, w: np.ndarray, signs: np.ndarray | None = None) -> GatedParams:
        r"""The continuous balanced lift of ``w`` (docs/theory.md [T-minima]).

        .. math::
            \gamma_{j,d} = s_{j,d} \|w_j\|^{1/D}, \qquad
            \omega_{G_j} = \Big(\prod_d s_{j,d}\Big) w_j \|w_j\|^{1/D - 1}
            \quad (0 \text{ if } w_j = 0).

        Parameters
        ----------
        w : ndarray, shape (n_features,)
        signs : ndarray of {-1, +1}, shape (n_groups, depth-1), optional
            :math:`s_{j,d}`; all ``+1`` by default.
        """
        w = check_array(w, "w", shape=(self.groups.n_features,))
        g = self.groups
        if signs is None:
            signs = np.ones((g.n_groups, self.n_gates))
        else:
            signs = check_array(signs, "signs", shape=(g.n_groups, self.n_gates))
            if not np.all(np.abs(signs) == 1):
                raise InvalidParameterError("`signs` must contain only -1 and +1; got others.")
        norms = g.norms(w)
        root = norms ** (1.0 / self.depth)
        nz = norms > 0
        scale = np.zeros_like(norms)
        scale[nz] = root[nz] / norms[nz]
        omega = w * g.expand(scale * signs.prod(axis=1))
        return GatedParams(omega, signs * root[:, None])
