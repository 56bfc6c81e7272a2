r"""Group block coordinate descent (BCD) with working sets and Anderson acceleration.

The engine of :func:`dgating.solvers.solve_prox` for a :class:`~dgating.problem.GroupedProblem`
with the squared or logistic loss, dense or ``scipy.sparse`` (CSC) ``X``, any :math:`q = 2/D`.

* **Block update** of group :math:`j` with the block Lipschitz constant
  :math:`L_j = \ell''_{\max} \lambda_{\max}(X_{G_j}^\top X_{G_j})`:
  :math:`w_j \leftarrow \mathrm{prox}_{(\lambda/L_j)\|\cdot\|^q}(w_j - \nabla_j L_0(w) / L_j)`,
  the exact group prox (docs/theory.md [T-prox]). Each update does not increase :math:`L_w` (a
  majorise-minimise step), also for :math:`q < 1`, where BCD converges to a stationary point.
* **Working sets** (as celer and skglm): the epochs run on the support plus the groups that
  violate first-order optimality most; the full gradient is checked outside only between
  working-set solves, and the set grows until the full problem is stationary.
* **Anderson acceleration** of the epochs (every ``K + 1`` epochs, the affine combination of the
  last iterates that minimises the norm of their differences), kept only if it lowers :math:`L_w`.

The kernels are compiled by numba (``cache=True``: the first call in a fresh environment pays the
compilation once; later processes load it from the cache).
"""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp
from numba import njit

from .penalties import GroupLqPenalty, scalar_prox
from .problem import GroupedProblem

__all__ = ["NON_FINITE", "bcd_applicable", "solve_bcd"]

_LOSS_CODES = {"squared": 0, "logistic": 1}
#: Anderson memory ``K`` (extrapolate every ``K + 1`` epochs).
_ANDERSON_K = 5
#: The inner stationarity of a working set is checked every this many epochs.
_CHECK_EVERY = 5
_MAX_OUTER = 200
#: Message of a run stopped by NaN/inf (:func:`solve_bcd` callers test ``startswith``).
NON_FINITE = "non-finite"


def bcd_applicable(problem: object) -> bool:
    """Whether :func:`solve_bcd` handles ``problem`` (a GLM with a built-in loss)."""
    return isinstance(problem, GroupedProblem) and problem.loss.name in _LOSS_CODES


# --- scalar prox, the same closed forms as :func:`dgating.penalties.scalar_prox` -----------------


@njit(cache=True)
def _prox_scalar(s, t, q):  # pragma: no cover - compiled
    if t == 0.0:
        return s
    if q == 1.0:
        return max(s - t, 0.0)
    r_jump = (2.0 * t * (1.0 - q)) ** (1.0 / (2.0 - q))
    if s <= (2.0 - q) / (2.0 * (1.0 - q)) * r_jump:
        return 0.0
    if q == 0.5:
        arg = min(max(-(3.0 * t / (4.0 * s)) * np.sqrt(3.0 / s), -1.0), 1.0)
        u = 2.0 * np.sqrt(s / 3.0) * np.cos(np.arccos(arg) / 3.0)
        return u * u
    if abs(q - 2.0 / 3.0) < 1e-15:
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
    r = s
    for _ in range(100):
        phi = r - s + t * q * r ** (q - 1.0)
        dphi = 1.0 - t * q * (1.0 - q) * r ** (q - 2.0)
        r_new = min(max(r - phi / dphi, r_jump), s)
        if abs(r_new - r) <= 1e-15 * r:
            return r_new
        r = r_new
    return r


# --- columns of a dense (Fortran-ordered) or CSC matrix ------------------------------------------


#: Reassociation lets the dense dot products vectorise; no flag that assumes finite values, so
#: NaN/inf still propagate to the stopping tests.
_FAST = {"reassoc", "contract"}


@njit(cache=True, fastmath=_FAST)
def _col_dot(X, data, indices, indptr, sparse, j, v):  # pragma: no cover - compiled
    acc = 0.0
    if sparse:
        for k in range(indptr[j], indptr[j + 1]):
            acc += data[k] * v[indices[k]]
    else:
        for i in range(v.shape[0]):
            acc += X[i, j] * v[i]
    return acc


@njit(cache=True, fastmath=_FAST)
def _col_axpy(X, data, indices, indptr, sparse, j, a, v):  # pragma: no cover - compiled
    if sparse:
        for k in range(indptr[j], indptr[j + 1]):
            v[indices[k]] += a * data[k]
    else:
        for i in range(v.shape[0]):
            v[i] += a * X[i, j]


@njit(cache=True)
def _derivative(z, y, loss, out):  # pragma: no cover - compiled
    inv = 1.0 / z.shape[0]
    for i in range(z.shape[0]):
        if loss == 0:
            out[i] = (z[i] - y[i]) * inv
        else:
            m = y[i] * z[i]
            if m > 0.0:
                e = np.exp(-m)
                out[i] = -y[i] * e / (1.0 + e) * inv
            else:
                out[i] = -y[i] / (1.0 + np.exp(m)) * inv


@njit(cache=True)
def _loss_value(z, y, loss):  # pragma: no cover - compiled
    acc = 0.0
    for i in range(z.shape[0]):
        if loss == 0:
            acc += 0.5 * (y[i] - z[i]) ** 2
        else:
            m = -y[i] * z[i]  # log(1 + e^m), stably
            acc += m + np.log1p(np.exp(-m)) if m > 0.0 else np.log1p(np.exp(m))
    return acc / z.shape[0]


@njit(cache=True)
def _block_lipschitz(X, data, indices, indptr, sparse, n, cols, curv):  # pragma: no cover
    # curv * lambda_max(X_G^T X_G), from the explicit k x k Gram matrix of the block; inf when
    # the Gram matrix overflows.
    k = cols.shape[0]
    gram = np.zeros((k, k))
    for a in range(k):
        if sparse:
            col = np.zeros(n)
            _col_axpy(X, data, indices, indptr, sparse, cols[a], 1.0, col)
            for b in range(a, k):
                gram[a, b] = _col_dot(X, data, indices, indptr, sparse, cols[b], col)
        else:
            for b in range(a, k):
                acc = 0.0
                for i in range(n):
                    acc += X[i, cols[a]] * X[i, cols[b]]
                gram[a, b] = acc
        for b in range(a):
            gram[a, b] = gram[b, a]
    if not np.all(np.isfinite(gram)):
        return np.inf
    return curv * np.linalg.eigvalsh(gram)[-1]


@njit(cache=True)
def _objective(z, y, loss, w, ws, grp_ptr, grp_idx, penalised, lam, q):  # pragma: no cover
    val = _loss_value(z, y, loss)
    for g in ws:
        if penalised[g]:
            sq = 0.0
            for k in range(grp_ptr[g], grp_ptr[g + 1]):
                sq += w[grp_idx[k]] ** 2
            val += lam * sq ** (0.5 * q)
    return val


@njit(cache=True)
def _ws_epochs(
    X,
    data,
    indices,
    indptr,
    sparse,
    y,
    xty,
    loss,
    w,
    z,
    ws,
    grp_ptr,
    grp_idx,
    penalised,
    lips,
    lam,
    q,
    max_epochs,
    tol_in,
    anderson_k,
):  # pragma: no cover - compiled
    """BCD epochs on the groups ``ws`` (all other weights are zero) until the largest first-order
    residual on ``ws`` is at most ``tol_in``; returns (epochs, last residual), residual ``nan``
    when the iterates stopped being finite. ``w`` and ``z = X w`` are updated in place."""
    n = y.shape[0]
    inv_n = 1.0 / n
    raw = np.empty(n)
    m = 0
    for g in ws:
        m += grp_ptr[g + 1] - grp_ptr[g]
    feats = np.empty(m, np.int64)
    pos = 0
    for g in ws:
        for k in range(grp_ptr[g], grp_ptr[g + 1]):
            feats[pos] = grp_idx[k]
            pos += 1
    kmax = grp_ptr[1:].copy()
    for g in range(kmax.shape[0]):
        kmax[g] = grp_ptr[g + 1] - grp_ptr[g]
    width = kmax.max()
    grad, old = np.empty(width), np.empty(width)
    hist = np.empty((anderson_k + 1, m))
    n_hist = 0
    viol = np.inf
    raw_valid = False  # whether raw = l'(z) for the current z
    for epoch in range(max_epochs):
        for g in ws:
            lo, hi = grp_ptr[g], grp_ptr[g + 1]
            if loss != 0 and not raw_valid:  # logistic: refresh l'(z) only after z moved
                _derivative(z, y, loss, raw)
                raw_valid = True
            sq = 0.0
            for k in range(lo, hi):
                j = grp_idx[k]
                old[k - lo] = w[j]
                if loss == 0:  # squared: grad_j = (X_j . z - X_j . y) / n, no O(n) residual pass
                    gj = (_col_dot(X, data, indices, indptr, sparse, j, z) - xty[j]) * inv_n
                else:
                    gj = _col_dot(X, data, indices, indptr, sparse, j, raw)
                grad[k - lo] = w[j] - gj / lips[g]
                sq += grad[k - lo] ** 2
            scale = 1.0
            if penalised[g]:
                nrm = np.sqrt(sq)
                scale = _prox_scalar(nrm, lam / lips[g], q) / nrm if nrm > 0.0 else 0.0
            for k in range(lo, hi):
                j = grp_idx[k]
                new = scale * grad[k - lo]
                if new != old[k - lo]:
                    _col_axpy(X, data, indices, indptr, sparse, j, new - old[k - lo], z)
                    w[j] = new
                    raw_valid = False
        if anderson_k > 0:
            for k in range(m):
                hist[n_hist, k] = w[feats[k]]
            n_hist += 1
            if n_hist == anderson_k + 1:
                n_hist = 0
                diff = hist[1:] - hist[:-1]
                gram = diff @ diff.T
                gram += (1e-10 * max(np.trace(gram), 1e-300)) * np.eye(anderson_k)
                c = np.linalg.solve(gram, np.ones(anderson_k))
                if np.all(np.isfinite(c)) and c.sum() != 0.0:
                    c /= c.sum()
                    extra = c @ hist[1:]
                    z_ex = np.zeros(n)
                    for k in range(m):
                        if extra[k] != 0.0:
                            _col_axpy(X, data, indices, indptr, sparse, feats[k], extra[k], z_ex)
                    w_ex = w.copy()
                    for k in range(m):
                        w_ex[feats[k]] = extra[k]
                    f_ex = _objective(z_ex, y, loss, w_ex, ws, grp_ptr, grp_idx, penalised, lam, q)
                    f_w = _objective(z, y, loss, w, ws, grp_ptr, grp_idx, penalised, lam, q)
                    if f_ex < f_w:
                        for k in range(m):
                            w[feats[k]] = extra[k]
                        z[:] = z_ex
                        raw_valid = False
        if epoch % _CHECK_EVERY == _CHECK_EVERY - 1 or epoch == max_epochs - 1:
            _derivative(z, y, loss, raw)
            raw_valid = True
            viol = 0.0
            for g in ws:
                lo, hi = grp_ptr[g], grp_ptr[g + 1]
                sq_w = 0.0
                for k in range(lo, hi):
                    grad[k - lo] = _col_dot(X, data, indices, indptr, sparse, grp_idx[k], raw)
                    sq_w += w[grp_idx[k]] ** 2
                res = 0.0
                if penalised[g] and sq_w > 0.0:
                    coef = lam * q * sq_w ** (0.5 * q - 1.0)
                    for k in range(lo, hi):
                        res += (grad[k - lo] + coef * w[grp_idx[k]]) ** 2
                    res = np.sqrt(res)
                else:
                    for k in range(lo, hi):
                        res += grad[k - lo] ** 2
                    res = np.sqrt(res)
                    if penalised[g]:
                        res = max(res - lam, 0.0) if q == 1.0 else 0.0
                viol = max(viol, res)
            if not np.isfinite(viol):
                return epoch + 1, np.nan
            if viol <= tol_in:
                return epoch + 1, viol
    return max_epochs, viol


# --- the Python driver -----------------------------------------------------------------------


class _Design:
    """``X`` in the layout of the kernels (Fortran-ordered dense or CSC), the group pointers, and
    the per-group Lipschitz bounds (Frobenius bounds for all, exact ones filled in lazily)."""

    def __init__(self, problem: GroupedProblem) -> None:
        X, groups = problem.X, problem.groups
        n_groups = groups.n_groups
        self.sparse, self.n = sp.issparse(X), X.shape[0]
        if self.sparse:
            csc = sp.csc_matrix(X, dtype=np.float64)
            csc.sort_indices()
            self.X = np.zeros((2, 2), order="F")
            self.data, self.indices, self.indptr = csc.data, csc.indices, csc.indptr
            col_sq = np.asarray(csc.multiply(csc).sum(axis=0)).ravel()
        else:
            self.X = np.asfortranarray(X, dtype=np.float64)
            self.data = np.zeros(1)
            self.indices = self.indptr = np.zeros(1, dtype=np.int32)
            col_sq = np.einsum("ij,ij->j", self.X, self.X)
        # Block g < n_groups is group g; block n_groups holds the unpenalised features.
        key = np.where(groups.penalised, groups.labels, n_groups)
        self.grp_idx = np.argsort(key, kind="stable").astype(np.int64)
        counts = np.bincount(key, minlength=n_groups + 1)
        self.grp_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.penalised = np.append(np.ones(n_groups, dtype=np.bool_), False)
        self.xty = np.asarray(X.T @ problem.y, dtype=np.float64)  # X_j . y, squared loss
        self.curv = problem.loss.curvature_bound(problem.n_samples)
        self.frobenius = self.curv * np.bincount(key, weights=col_sq, minlength=n_groups + 1)
        self.lips = np.full(n_groups + 1, -1.0)  # exact, computed when a block enters a set

    def fill_lipschitz(self, blocks: np.ndarray) -> None:
        for g in blocks[self.lips[blocks] < 0]:
            cols = self.grp_idx[self.grp_ptr[g] : self.grp_ptr[g + 1]]
            exact = (
                _block_lipschitz(
                    self.X,
                    self.data,
                    self.indices,
                    self.indptr,
                    self.sparse,
                    self.n,
                    cols,
                    self.curv,
                )
                if cols.size
                else 0.0
            )
            # A zero column block never moves; any positive constant keeps the update finite.
            self.lips[g] = exact if exact > 0 else 1.0


_DESIGNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _design(problem: GroupedProblem) -> _Design:
    """The cached :class:`_Design` of ``problem`` (warm starts along a path reuse it)."""
    design = _DESIGNS.get(problem)
    if design is None:
        design = _DESIGNS[problem] = _Design(problem)
    return design


def solve_bcd(
    problem: GroupedProblem,
    q: float,
    lam: float,
    w: np.ndarray,
    *,
    tol_abs: float,
    max_epochs: int,
    min_ws: int = 10,
) -> tuple[np.ndarray, int, int, str]:
    r"""Working-set group BCD from ``w`` until the largest first-order residual of :math:`L_w`
    (:meth:`~dgating.penalties.GroupLqPenalty.residuals`) is at most ``tol_abs``.

    Outer loop: full gradient, residuals, and a score per group that ranks candidates: the
    residual, and for a zero group with :math:`q < 1` (whose residual is zero by convention)
    :math:`L_j^F\, T(\|g_j\| / L_j^F)` with the Frobenius bound :math:`L_j^F \ge L_j`: positive
    iff one prox-gradient step would move the group off zero. The working set is the support, the
    unpenalised block and the best-scored groups, at least ``min_ws`` and twice the support, and
    never smaller than the previous one. Inner loop: :func:`_ws_epochs` to a tolerance of a tenth
    of the current residual (not below ``0.3 * tol_abs``).

    Returns
    -------
    w : ndarray, shape (n_features,)
    n_outer : int
        Working-set iterations.
    epochs : int
        BCD epochs over all working sets.
    message : str
        Why it stopped.
    """
    design = _design(problem)
    groups, loss, y = problem.groups, problem.loss, problem.y
    n_groups = groups.n_groups
    w = np.array(w, dtype=np.float64)
    z = np.asarray(problem.X @ w, dtype=np.float64)
    code = _LOSS_CODES[loss.name]
    penalty = GroupLqPenalty(lam, q)
    ws_size, epochs = 0, 0
    message = f"reached max_epochs={max_epochs}"
    for n_outer in range(_MAX_OUTER):
        grad = problem.X.T @ loss.derivative(z, y)
        res = penalty.residuals(w, grad, groups)
        worst = float(res.max())
        if not np.isfinite(worst):
            return w, n_outer, epochs, NON_FINITE + " gradient"
        if worst <= tol_abs:
            return w, n_outer, epochs, "stationarity <= tol"
        if epochs >= max_epochs:
            return w, n_outer, epochs, message
        norms = groups.norms(w)
        score = res[:n_groups].copy()
        if q < 1.0:
            zero = norms == 0
            fro = np.maximum(design.frobenius[:n_groups][zero], 1e-300)
            gn = groups.norms(grad)[zero]
            score[zero] = fro * scalar_prox(gn / fro, lam / fro, q)
        support = norms > 0
        score[support] = np.inf
        ws_size = min(n_groups, max(ws_size, min_ws, 2 * int(support.sum())))
        cand = np.argpartition(-score, ws_size - 1)[:ws_size] if ws_size else np.array([], int)
        cand = cand[score[cand] > 0]
        blocks = np.sort(cand).astype(np.int64)
        if design.grp_ptr[-1] > design.grp_ptr[-2]:
            blocks = np.append(blocks, n_groups)
        design.fill_lipschitz(blocks)
        if not np.all(np.isfinite(design.lips[blocks])):
            return w, n_outer, epochs, NON_FINITE + " block Lipschitz constant (overflowing X)"
        n_ep, viol = _ws_epochs(
            design.X,
            design.data,
            design.indices,
            design.indptr,
            design.sparse,
            y,
            design.xty,
            code,
            w,
            z,
            blocks,
            design.grp_ptr,
            design.grp_idx,
            design.penalised,
            design.lips,
            float(lam),
            float(q),
            int(max_epochs - epochs),
            max(0.1 * worst, 0.3 * tol_abs),
            _ANDERSON_K,
        )
        epochs += n_ep
        if not np.isfinite(viol):
            return w, n_outer + 1, epochs, NON_FINITE + " iterate"
    return w, _MAX_OUTER, epochs, f"reached {_MAX_OUTER} working-set iterations"
