r"""The group :math:`L_{2,q}` penalty :math:`\lambda \sum_j \|w_{G_j}\|_2^q` and its prox.

For depth-:math:`D` gating, :math:`q = 2/D` (:func:`effective_q`): ``D = 2`` is the group lasso,
``D = 3`` is :math:`L_{2,2/3}`, ``D = 4`` is :math:`L_{2,1/2}`; non-convex for ``D >= 3``.

The group prox is :math:`\mathrm{prox}_{t\|\cdot\|^q}(z) = T(\|z\|)\, z / \|z\|` with the scalar
thresholding map (docs/theory.md [T-prox])

.. math::
    T(s) = \operatorname*{argmin}_{r \ge 0} \tfrac12 (r - s)^2 + t r^q .

For :math:`q < 1`, :math:`T(s) = 0` for :math:`s \le \tau` and jumps at
:math:`\tau = \frac{2-q}{2(1-q)} (2t(1-q))^{1/(2-q)}` to :math:`(2t(1-q))^{1/(2-q)}`.
Closed forms are used for :math:`q = 1` (soft thresholding), :math:`q = 1/2` (the depressed cubic
in :math:`\sqrt r`, Xu et al. 2012) and :math:`q = 2/3` (the quartic in :math:`r^{1/3}` solved by
Ferrari's resolvent, Cao et al. 2013); other :math:`q` use a safeguarded Newton iteration on the
convex branch of :math:`\phi(r) = r - s + t q r^{q-1}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ._validation import InvalidParameterError, check_depth, check_lam
from .groups import Groups

__all__ = ["GroupLqPenalty", "effective_q", "group_residuals", "prox_threshold", "scalar_prox"]


def effective_q(depth: int) -> float:
    r"""The exponent :math:`q = 2/D` of the penalty induced by depth-:math:`D` gating.

    Parameters
    ----------
    depth : int
        :math:`D \ge 2`.

    Returns
    -------
    float
        :math:`q = 2/D \in (0, 1]`.

    Examples
    --------
    >>> effective_q(2), effective_q(4)
    (1.0, 0.5)
    """
    return 2.0 / check_depth(depth)


def _check_q(q: float) -> float:
    q = float(q)
    if not (0.0 < q <= 1.0):
        raise InvalidParameterError(f"`q` must be in (0, 1]; got {q}.")
    return q


def prox_threshold(t: float | np.ndarray, q: float) -> np.ndarray:
    r"""The threshold :math:`\tau(t, q)` below which :math:`T(s) = 0`.

    .. math::
        \tau = \tfrac{2-q}{2(1-q)} \big(2t(1-q)\big)^{1/(2-q)} \quad (q < 1),
        \qquad \tau = t \quad (q = 1).

    Examples
    --------
    >>> round(float(prox_threshold(1.0, 0.5)), 6)  # (3/2) * 1**(2/3)
    1.5
    """
    q = _check_q(q)
    t = np.asarray(t, dtype=float)
    if q == 1.0:
        return t
    return (2 - q) / (2 * (1 - q)) * (2 * t * (1 - q)) ** (1 / (2 - q))


@njit(cache=True)
def _prox_scalar(s: float, t: float, q: float) -> float:  # pragma: no cover - compiled
    # T(s) for one (s, t): the closed forms, or the safeguarded Newton iteration. Compiled so that
    # the BCD kernels (dgating._bcd) call it per block; scalar_prox maps it over arrays.
    if t == 0.0:
        return s
    if q == 1.0:
        return max(s - t, 0.0)
    r_jump = (2.0 * t * (1.0 - q)) ** (1.0 / (2.0 - q))
    if s <= (2.0 - q) / (2.0 * (1.0 - q)) * r_jump:  # s <= tau (prox_threshold): T(s) = 0
        return 0.0
    if q == 0.5:
        # r - s + (t/2) r^{-1/2} = 0 with u = sqrt(r): u^3 - s u + t/2 = 0; largest root,
        # trigonometric form (three real roots exist for s above the threshold).
        arg = min(max(-(3.0 * t / (4.0 * s)) * np.sqrt(3.0 / s), -1.0), 1.0)
        u = 2.0 * np.sqrt(s / 3.0) * np.cos(np.arccos(arg) / 3.0)
        return u * u
    if abs(q - 2.0 / 3.0) < 1e-15:
        # r - s + (2t/3) r^{-1/3} = 0 with u = r^{1/3}: u^4 - s u + c = 0, c = 2t/3. Ferrari: the
        # resolvent m^3 - c m - s^2/8 = 0 has one root m > 0; then u^2 + m = sqrt(2m) (u + s/(4m)),
        # whose larger root is the local minimiser.
        c = 2.0 * t / 3.0
        a = (3.0 * s * s / (16.0 * c)) * np.sqrt(3.0 / c)
        base = 2.0 * np.sqrt(c / 3.0)
        if a <= 1.0:
            m = base * np.cos(np.arccos(a) / 3.0)
        else:
            m = base * np.cosh(np.arccosh(a) / 3.0)
        k = np.sqrt(2.0 * m)
        u = 0.5 * (k + np.sqrt(max(2.0 * s / k - 2.0 * m, 0.0)))
        return u**3
    # phi(r) = r - s + t q r^{q-1} is increasing and convex for r >= (t q (1-q))^{1/(2-q)},
    # phi(s) > 0, and the wanted root lies in [r_jump, s] above that point. Newton from r = s
    # decreases monotonically to it; the clip to [r_jump, s] is a safeguard against round-off.
    r = s
    for _ in range(100):
        phi = r - s + t * q * r ** (q - 1.0)
        dphi = 1.0 - t * q * (1.0 - q) * r ** (q - 2.0)
        r_new = min(max(r - phi / dphi, r_jump), s)
        if abs(r_new - r) <= 1e-15 * r:
            return r_new
        r = r_new
    return r


@njit(cache=True)
def _prox_map(s, t, q, out):  # pragma: no cover - compiled
    for i in range(s.shape[0]):
        out[i] = _prox_scalar(s[i], t[i], q)


@njit(cache=True)
def _coef(sq_w, lam, q):  # pragma: no cover - compiled
    # The gradient of lam ||w_j||^q at w_j != 0 is coef * w_j.
    return lam * q * sq_w ** (0.5 * q - 1.0)


@njit(cache=True)
def _zero_residual(sq_g, lam, q):  # pragma: no cover - compiled
    # A zero group: the distance of -g_j to lam times the unit ball (q = 1); 0 for q < 1.
    return max(np.sqrt(sq_g) - lam, 0.0) if q == 1.0 else 0.0


@njit(cache=True)
def _group_residuals(grad, w, labels, lam, q, res, sq_w, sq_g):  # pragma: no cover - compiled
    # res[j] for every group and res[-1] for the unpenalised features, with the squared group
    # norms of w and grad as by-products; two passes over the features, no per-feature temporaries.
    n_groups = sq_w.shape[0]
    sq_w[:] = 0.0
    sq_g[:] = 0.0
    free = 0.0
    for i in range(labels.shape[0]):
        j = labels[i]
        if j >= 0:
            sq_w[j] += w[i] * w[i]
            sq_g[j] += grad[i] * grad[i]
        else:
            free += grad[i] * grad[i]
    coef = np.zeros(n_groups)
    for j in range(n_groups):
        if sq_w[j] > 0.0:
            coef[j] = _coef(sq_w[j], lam, q)
    acc = np.zeros(n_groups)
    for i in range(labels.shape[0]):
        j = labels[i]
        if j >= 0 and sq_w[j] > 0.0:
            v = grad[i] + coef[j] * w[i]
            acc[j] += v * v
    for j in range(n_groups):
        res[j] = np.sqrt(acc[j]) if sq_w[j] > 0.0 else _zero_residual(sq_g[j], lam, q)
    res[n_groups] = np.sqrt(free)


def group_residuals(
    w: np.ndarray, grad: np.ndarray, groups: Groups, lam: float, q: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`GroupLqPenalty.residuals` with the squared group norms of ``w`` and ``grad``,
    ``(res, sq_w, sq_g)``, in one compiled pass (only per-group arrays are allocated)."""
    res, sq = np.empty(groups.n_groups + 1), np.empty((2, groups.n_groups))
    w = np.ascontiguousarray(w, dtype=float)
    grad = np.ascontiguousarray(grad, dtype=float)
    _group_residuals(grad, w, groups.labels, float(lam), float(q), res, sq[0], sq[1])
    return res, sq[0], sq[1]


def scalar_prox(s: np.ndarray | float, t: np.ndarray | float, q: float) -> np.ndarray:
    r"""The scalar map :math:`T(s) = \operatorname{argmin}_{r\ge0} \frac12(r-s)^2 + t r^q`.

    Parameters
    ----------
    s : float or ndarray
        Non-negative inputs (norms).
    t : float or ndarray
        Non-negative thresholds (step times :math:`\lambda`), broadcast against ``s``.
    q : float
        Exponent in :math:`(0, 1]`.

    Returns
    -------
    ndarray
        :math:`T(s)`, same shape as the broadcast of ``s`` and ``t``; :math:`T(s) = 0` for
        :math:`s \le \tau`.

    Examples
    --------
    >>> float(scalar_prox(3.0, 1.0, 1.0))
    2.0
    >>> float(scalar_prox(1.4, 1.0, 0.5)), round(float(scalar_prox(2.0, 1.0, 0.5)), 6)
    (0.0, 1.605378)
    """
    q = _check_q(q)
    s, t = np.broadcast_arrays(np.asarray(s, dtype=float), np.asarray(t, dtype=float))
    out = np.empty(s.shape)
    _prox_map(s.ravel(), t.ravel(), q, out.reshape(-1))
    return out


@dataclass(frozen=True)
class GroupLqPenalty:
    r"""Group :math:`L_{2,q}` penalty, :math:`P(w) = \lambda \sum_{j=1}^{J} \|w_{G_j}\|_2^{q}`.

    For depth-:math:`D` gating, :math:`\min \frac{\lambda}{D}(\|\omega_{G_j}\|^2 + \sum_d
    \gamma_{j,d}^2)` over factorisations of :math:`w_{G_j}` equals :math:`\lambda
    \|w_{G_j}\|_2^{2/D}` (AM-GM; equality iff balanced), hence ``q = 2 / depth``.
    Unpenalised features (label ``-1``) do not enter.

    Parameters
    ----------
    lam : float
        Regularisation strength :math:`\lambda \ge 0`.
    q : float
        Exponent in ``(0, 1]``; non-convex for ``q < 1``.

    Examples
    --------
    >>> import numpy as np
    >>> pen = GroupLqPenalty(lam=1.0, q=0.5)
    >>> round(float(pen.value(np.array([3.0, 4.0]), groups=np.array([0, 0]))), 6)
    2.236068
    """

    lam: float
    q: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", check_lam(self.lam))
        object.__setattr__(self, "q", _check_q(self.q))

    @classmethod
    def from_depth(cls, lam: float, depth: int) -> GroupLqPenalty:
        """The penalty induced by depth-``depth`` gating, ``q = 2 / depth``."""
        return cls(lam, effective_q(depth))

    def value(self, w: np.ndarray, groups: Groups | np.ndarray) -> float:
        r""":math:`\lambda \sum_j \|w_{G_j}\|^q`."""
        groups = groups if isinstance(groups, Groups) else Groups(groups)
        return self.lam * float(np.sum(groups.norms(w) ** self.q))

    def prox(self, z: np.ndarray, step: float, groups: Groups) -> np.ndarray:
        r"""Group prox of ``step`` times the penalty at ``z``: :math:`T(\|z_j\|)\, z_j/\|z_j\|`."""
        norms = groups.norms(z)
        new = scalar_prox(norms, step * self.lam, self.q)
        scale = np.zeros_like(norms)
        nz = norms > 0
        scale[nz] = new[nz] / norms[nz]
        return z * groups.expand(scale)

    def residuals(self, w: np.ndarray, grad: np.ndarray, groups: Groups) -> np.ndarray:
        r"""First-order residual of :math:`L_0 + P` per group, shape ``(n_groups + 1,)``.

        Non-zero group: :math:`\|g_j + \lambda q \|w_j\|^{q-2} w_j\|`. Zero group: the distance of
        :math:`-g_j` to :math:`\lambda` times the unit ball, :math:`\max(\|g_j\| - \lambda, 0)`, for
        :math:`q = 1`; zero for :math:`q < 1` (infinite slope at 0). The last entry is
        :math:`\|g_{\mathrm{unpen}}\|` for the unpenalised features.
        """
        return group_residuals(w, grad, groups, self.lam, self.q)[0]
