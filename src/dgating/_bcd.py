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
  working-set solves, and the set grows until the full problem is stationary. Each set's columns
  are copied once into the kernels' layout; ``X`` itself is never copied whole.
* **Proximal Newton** for the logistic loss (:func:`_newton`): the blocks step on the quadratic
  model with the weights :math:`\ell''(X w)` and exact weighted block constants, then a line
  search on :math:`L_w`; the curvature bound :math:`1/4` is far above the actual curvature near
  a well-fitted solution, and the model's epochs need no exponentials.
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

from .penalties import _coef, _prox_scalar, _zero_residual, group_residuals, scalar_prox
from .problem import GroupedProblem

__all__ = ["NON_FINITE", "bcd_applicable", "solve_bcd"]

_LOSS_CODES = {"squared": 0, "logistic": 1}
#: Anderson memory ``K`` (extrapolate every ``K + 1`` epochs).
_ANDERSON_K = 5
#: The inner stationarity of a working set is checked every this many epochs.
_CHECK_EVERY = 5
_MAX_OUTER = 200
#: Step halvings of the line search of a proximal Newton step.
_MAX_HALVINGS = 30
#: Message of a run stopped by NaN/inf (:func:`solve_bcd` callers test ``startswith``).
NON_FINITE = "non-finite"


def bcd_applicable(problem: object) -> bool:
    """Whether :func:`solve_bcd` handles ``problem`` (a GLM with a built-in loss)."""
    return isinstance(problem, GroupedProblem) and problem.loss.name in _LOSS_CODES


# --- the working-set matrix: dense (Fortran-ordered) or CSC columns ------------------------------
# Kernels take the working-set columns as (X, data, indices, indptr, sparse); block b of the set is
# columns ptr[b]:ptr[b + 1]. Loss codes: 0 squared, 1 logistic, 2 the quadratic model of a Newton
# step, l(z) = sum_i r0_i (z_i - z0_i) + W_i (z_i - z0_i)^2 / 2.

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
def _derivative(z, y, loss, z0, r0, wts, out):  # pragma: no cover - compiled
    inv = 1.0 / z.shape[0]
    for i in range(z.shape[0]):
        if loss == 0:
            out[i] = (z[i] - y[i]) * inv
        elif loss == 1:
            m = y[i] * z[i]
            if m > 0.0:
                e = np.exp(-m)
                out[i] = -y[i] * e / (1.0 + e) * inv
            else:
                out[i] = -y[i] / (1.0 + np.exp(m)) * inv
        else:
            out[i] = r0[i] + wts[i] * (z[i] - z0[i])


@njit(cache=True)
def _loss_value(z, y, loss, z0, r0, wts):  # pragma: no cover - compiled
    acc = 0.0
    for i in range(z.shape[0]):
        if loss == 0:
            acc += 0.5 * (y[i] - z[i]) ** 2 / z.shape[0]
        elif loss == 1:
            m = -y[i] * z[i]  # log(1 + e^m), stably
            acc += (m + np.log1p(np.exp(-m)) if m > 0.0 else np.log1p(np.exp(m))) / z.shape[0]
        else:
            dz = z[i] - z0[i]
            acc += (r0[i] + 0.5 * wts[i] * dz) * dz
    return acc


@njit(cache=True)
def _lipschitz(X, data, indices, indptr, sparse, ptr, blocks, wts, out):  # pragma: no cover
    # out[b] = lambda_max(X_b^T diag(wts) X_b) for b in blocks, from the explicit k x k Gram
    # matrix of the block; inf when it overflows.
    n = wts.shape[0]
    col = np.empty(n)
    for b in blocks:
        lo, k = ptr[b], ptr[b + 1] - ptr[b]
        gram = np.zeros((k, k))
        for a in range(k):
            col[:] = 0.0
            _col_axpy(X, data, indices, indptr, sparse, lo + a, 1.0, col)
            for i in range(n):
                col[i] *= wts[i]
            for c in range(a, k):
                gram[a, c] = _col_dot(X, data, indices, indptr, sparse, lo + c, col)
                gram[c, a] = gram[a, c]
        if not np.all(np.isfinite(gram)):
            out[b] = np.inf
        else:
            out[b] = np.linalg.eigvalsh(gram)[-1] if k else 0.0


@njit(cache=True)
def _penalty(w, ptr, penalised, lam, q):  # pragma: no cover - compiled
    val = 0.0
    for b in range(ptr.shape[0] - 1):
        if penalised[b]:
            sq = 0.0
            for k in range(ptr[b], ptr[b + 1]):
                sq += w[k] ** 2
            val += lam * sq ** (0.5 * q)
    return val


@njit(cache=True)
def _residual(X, data, indices, indptr, sparse, raw, w, ptr, penalised, lam, q):  # pragma: no cover
    """Largest first-order residual over the blocks (as ``GroupLqPenalty.residuals``) for the
    loss derivative ``raw`` at ``X w``."""
    width = 0
    for b in range(ptr.shape[0] - 1):
        width = max(width, ptr[b + 1] - ptr[b])
    grad = np.empty(width)
    viol = 0.0
    for b in range(ptr.shape[0] - 1):
        lo, hi = ptr[b], ptr[b + 1]
        sq_w = 0.0
        for k in range(lo, hi):
            grad[k - lo] = _col_dot(X, data, indices, indptr, sparse, k, raw)
            sq_w += w[k] ** 2
        res = 0.0
        if penalised[b] and sq_w > 0.0:
            coef = _coef(sq_w, lam, q)
            for k in range(lo, hi):
                res += (grad[k - lo] + coef * w[k]) ** 2
            res = np.sqrt(res)
        else:
            for k in range(lo, hi):
                res += grad[k - lo] ** 2
            res = _zero_residual(res, lam, q) if penalised[b] else np.sqrt(res)
        viol = max(viol, res)
    return viol


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
    z0,
    r0,
    wts,
    w,
    z,
    ptr,
    penalised,
    lips,
    lam,
    q,
    max_epochs,
    tol_in,
    anderson_k,
):  # pragma: no cover - compiled
    """BCD epochs on the working set until its largest first-order residual is at most
    ``tol_in``; returns (epochs, last residual), residual ``nan`` when the iterates stopped being
    finite (``inf`` when no epoch ran). ``w`` (the working-set weights) and ``z = X w`` are
    updated in place."""
    n, m = y.shape[0], w.shape[0]
    inv_n = 1.0 / n
    n_blocks = ptr.shape[0] - 1
    raw = np.empty(n)
    width = 0
    for b in range(n_blocks):
        width = max(width, ptr[b + 1] - ptr[b])
    grad, old = np.empty(width), np.empty(width)
    hist = np.empty((anderson_k + 1, m))
    n_hist = 0
    viol = np.inf
    raw_valid = False  # whether raw = l'(z) for the current z
    for epoch in range(max_epochs):
        for b in range(n_blocks):
            lo, hi = ptr[b], ptr[b + 1]
            if loss != 0 and not raw_valid:  # refresh l'(z) only after z moved
                _derivative(z, y, loss, z0, r0, wts, raw)
                raw_valid = True
            sq = 0.0
            for k in range(lo, hi):
                old[k - lo] = w[k]
                if loss == 0:  # squared: grad_k = (X_k . z - X_k . y) / n, no O(n) residual pass
                    gk = (_col_dot(X, data, indices, indptr, sparse, k, z) - xty[k]) * inv_n
                else:
                    gk = _col_dot(X, data, indices, indptr, sparse, k, raw)
                grad[k - lo] = w[k] - gk / lips[b]
                sq += grad[k - lo] ** 2
            scale = 1.0
            if penalised[b]:
                nrm = np.sqrt(sq)
                scale = _prox_scalar(nrm, lam / lips[b], q) / nrm if nrm > 0.0 else 0.0
            for k in range(lo, hi):
                new = scale * grad[k - lo]
                if new != old[k - lo]:
                    _col_axpy(X, data, indices, indptr, sparse, k, new - old[k - lo], z)
                    w[k] = new
                    raw_valid = False
        if anderson_k > 0:
            hist[n_hist] = w
            n_hist += 1
            if n_hist == anderson_k + 1:
                n_hist = 0
                diff = hist[1:] - hist[:-1]
                gram = diff @ diff.T
                gram += (1e-10 * max(np.trace(gram), 1e-300)) * np.eye(anderson_k)
                c = np.linalg.solve(gram, np.ones(anderson_k))
                if np.all(np.isfinite(c)) and c.sum() != 0.0:
                    c /= c.sum()
                    w_ex = c @ hist[1:]
                    z_ex = np.zeros(n)  # X w_ex: w is zero outside the set
                    for k in range(m):
                        if w_ex[k] != 0.0:
                            _col_axpy(X, data, indices, indptr, sparse, k, w_ex[k], z_ex)
                    f_ex = _loss_value(z_ex, y, loss, z0, r0, wts)
                    f_ex += _penalty(w_ex, ptr, penalised, lam, q)
                    f_w = _loss_value(z, y, loss, z0, r0, wts)
                    f_w += _penalty(w, ptr, penalised, lam, q)
                    if f_ex < f_w:
                        w[:] = w_ex
                        z[:] = z_ex
                        raw_valid = False
        if epoch % _CHECK_EVERY == _CHECK_EVERY - 1 or epoch == max_epochs - 1:
            _derivative(z, y, loss, z0, r0, wts, raw)
            raw_valid = True
            viol = _residual(X, data, indices, indptr, sparse, raw, w, ptr, penalised, lam, q)
            if not np.isfinite(viol):
                return epoch + 1, np.nan
            if viol <= tol_in:
                return epoch + 1, viol
    return max_epochs, viol


# --- the Python driver -----------------------------------------------------------------------


class _Design:
    """The group layout of ``problem`` for the kernels, and per-group constants computed once:
    the exact block Lipschitz constants (filled in as groups enter a working set) and, for
    :math:`q < 1`, the Frobenius bounds :math:`L_j^F \\ge L_j` that score zero groups."""

    def __init__(self, problem: GroupedProblem) -> None:
        groups = problem.groups
        n_groups = groups.n_groups
        self.problem = weakref.proxy(problem)
        # Block g < n_groups is group g; block n_groups holds the unpenalised features.
        key = self._key(groups)
        # Features ordered by block; None when they already are (contiguous groups, the common
        # case: no index array of length p is kept).
        self.grp_idx = None if np.all(key[:-1] <= key[1:]) else np.argsort(key, kind="stable")
        counts = np.bincount(key, minlength=n_groups + 1)
        self.grp_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.curv = problem.loss.curvature_bound(problem.n_samples)
        self.lips = np.full(n_groups + 1, -1.0)  # exact, computed when a block enters a set
        self._frobenius: np.ndarray | None = None

    @property
    def frobenius(self) -> np.ndarray:
        if self._frobenius is None:
            X = self.problem.X
            col_sq = (
                np.asarray(X.multiply(X).sum(axis=0)).ravel()
                if sp.issparse(X)
                else np.einsum("ij,ij->j", X, X)
            )
            self._frobenius = self.curv * np.bincount(
                self._key(self.problem.groups), weights=col_sq, minlength=self.lips.size
            )
        return self._frobenius

    @staticmethod
    def _key(groups) -> np.ndarray:
        # Block of each feature: its group, or n_groups for the unpenalised ones.
        return np.where(groups.penalised, groups.labels, groups.n_groups)


class _WorkingSet:
    """The columns of the blocks ``blocks`` (sorted group ids; ``n_groups`` is the unpenalised
    block), contiguous and in the kernels' layout, with their constants."""

    def __init__(self, design: _Design, problem: GroupedProblem, blocks: np.ndarray) -> None:
        self.blocks = blocks
        starts, sizes = (
            design.grp_ptr[blocks],
            design.grp_ptr[blocks + 1] - design.grp_ptr[blocks],
        )
        self.ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        # Positions in block order: block b's run starts[b] .. starts[b] + sizes[b], concatenated.
        pos = np.repeat(starts - self.ptr[:-1], sizes) + np.arange(self.ptr[-1])
        self.feats = pos if design.grp_idx is None else design.grp_idx[pos]
        X = problem.X
        if sp.issparse(X):
            cols = sp.csc_array(X[:, self.feats])
            self.X = np.zeros((1, 1), order="F")
            self.data, self.indices, self.indptr = cols.data, cols.indices, cols.indptr
        else:
            # A Fortran-ordered copy, gathered along the memory order of X.
            cols = self.X = (
                np.ascontiguousarray(X.T[self.feats]).T
                if X.flags.f_contiguous
                else np.asfortranarray(X[:, self.feats])
            )
            # Placeholders typed like scipy's CSC index arrays: one compiled kernel serves both.
            self.data, self.indices = np.zeros(1), np.zeros(1, dtype=np.int32)
            self.indptr = self.indices
        self.sparse = sp.issparse(X)
        self.xty = np.asarray(cols.T @ problem.y, dtype=np.float64)
        self.penalised = blocks < design.lips.size - 1
        todo = np.flatnonzero(design.lips[blocks] < 0)
        if todo.size:
            out = np.empty(blocks.size)
            weights = np.full(problem.n_samples, design.curv)
            _lipschitz(*self.matrix, self.ptr, todo, weights, out)
            # A zero column block never moves; any positive constant keeps the update finite.
            design.lips[blocks[todo]] = np.where(out[todo] > 0, out[todo], 1.0)
        self.lips = design.lips[blocks]
        #: Newton's model constants: (weights W_ref, block constants at W_ref), see _newton.
        self.model: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def matrix(self) -> tuple:
        return self.X, self.data, self.indices, self.indptr, self.sparse


_DESIGNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _design(problem: GroupedProblem) -> _Design:
    """The cached :class:`_Design` of ``problem`` (warm starts along a path reuse it)."""
    design = _DESIGNS.get(problem)
    if design is None:
        design = _DESIGNS[problem] = _Design(problem)
    return design


def _newton(
    ws: _WorkingSet,
    problem: GroupedProblem,
    w: np.ndarray,
    z: np.ndarray,
    lam: float,
    q: float,
    tol_in: float,
    max_epochs: int,
) -> tuple[int, float]:
    r"""Proximal Newton on the working set (logistic loss), until its largest first-order residual
    is at most ``tol_in``; ``w`` (working-set weights) and ``z = X w`` are updated in place.

    Each step minimises the quadratic model :math:`\ell'(z)^\top X d + \frac12 d^\top X^\top
    \operatorname{diag}(\ell''(z)) X d + P(w + d)` by BCD (:func:`_ws_epochs`, loss code 2) with
    the block constants of the weighted Gram matrices, to a tenth of the current residual; a
    backtracking line search on :math:`L_w` then takes :math:`w + t d`. Where the logistic
    curvature bound :math:`1/4` is far above the curvature at the iterate (small :math:`\lambda`,
    nearly separable data) this takes far fewer epochs than BCD on :math:`L_w` itself, and no
    exponential per block update. A step without decrease falls back to ``_CHECK_EVERY`` epochs of
    that BCD, so :math:`L_w` never increases by more than round-off.
    """
    y, loss = problem.y, problem.loss
    mat, ptr, pen = ws.matrix, ws.ptr, ws.penalised
    blocks = np.arange(ptr.size - 1)
    none = np.zeros(0)
    epochs, viol = 0, np.inf
    while epochs < max_epochs:
        r0, wts = loss.derivative(z, y), loss.curvature(z, y)
        viol = _residual(*mat, r0, w, ptr, pen, lam, q)
        if not np.isfinite(viol):
            return epochs, np.nan
        if viol <= tol_in:
            break
        # lambda_max(X^T diag(c W) X) = c lambda_max(X^T diag(W) X), so the constants of the
        # last exact weights W_ref, times c = max_i W_i / W_ref_i, bound the current ones; they
        # are recomputed only when c exceeds 2 (the weights settle as Newton converges).
        ratio = np.inf if ws.model is None else float(np.max(wts / ws.model[0]))
        if not ratio <= 2.0:
            exact = np.empty(blocks.size)
            _lipschitz(*mat, ptr, blocks, wts, exact)
            # A flat model block gets a finite, tiny step.
            ws.model = (np.maximum(wts, 1e-300), np.maximum(exact, 1e-12 * ws.lips))
            ratio = 1.0
        lips = ratio * ws.model[1]
        v, zm = w.copy(), z.copy()
        n_ep, _ = _ws_epochs(
            *mat, y, ws.xty, 2, z, r0, wts, v, zm, ptr, pen, lips, lam, q,
            max_epochs - epochs, max(0.1 * viol, 0.3 * tol_in), _ANDERSON_K,
        )  # fmt: skip
        epochs += n_ep
        d, u = v - w, zm - z
        pen_w = _penalty(w, ptr, pen, lam, q)
        f0 = _loss_value(z, y, 1, none, none, none) + pen_w
        # Model change, <= 0 (BCD descends on the model, whose loss part is 0 at w).
        decrease = _loss_value(zm, y, 2, z, r0, wts) + _penalty(v, ptr, pen, lam, q) - pen_w
        t = 1.0
        for _ in range(_MAX_HALVINGS):
            f = _loss_value(z + t * u, y, 1, none, none, none)
            f += _penalty(w + t * d, ptr, pen, lam, q)
            # Armijo, with round-off slack: near the solution the decrease is below eps * f0.
            if f <= f0 + 1e-4 * t * decrease + 8 * np.finfo(float).eps * abs(f0):
                w += t * d
                z += t * u
                break
            t *= 0.5
        else:
            n_ep, viol = _ws_epochs(
                *mat, y, ws.xty, 1, none, none, none, w, z, ptr, pen, ws.lips, lam, q,
                min(_CHECK_EVERY, max_epochs - epochs), tol_in, 0,
            )  # fmt: skip
            epochs += n_ep
    return epochs, viol


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
    (:meth:`~dgating.penalties.GroupLqPenalty.residuals`) is at most ``tol_abs``. A float64
    ``w`` is overwritten (the caller passes its own copy: no second weight vector).

    Outer loop: full gradient, residuals, and a score per group that ranks candidates: the
    residual, and for a zero group with :math:`q < 1` (whose residual is zero by convention)
    :math:`L_j^F\, T(\|g_j\| / L_j^F)` with the Frobenius bound :math:`L_j^F \ge L_j`: positive
    iff one prox-gradient step would move the group off zero. The working set is the support, the
    unpenalised block and the best-scored groups, at least ``min_ws`` and twice the support, and
    never smaller than the previous one; its columns are copied once per set into the kernels'
    layout (never the whole ``X``). Inner loop, to a tenth of the current residual (not below
    ``0.3 * tol_abs``): :func:`_ws_epochs` for the squared loss, :func:`_newton` for the logistic.

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
    w = np.asarray(w, dtype=np.float64)
    z = np.asarray(problem.X @ w, dtype=np.float64)
    ws: _WorkingSet | None = None
    ws_size, epochs = 0, 0
    none = np.zeros(0)
    message = f"reached max_epochs={max_epochs}"
    for n_outer in range(_MAX_OUTER):
        grad = problem.X.T @ loss.derivative(z, y)
        res, sq_w, sq_g = group_residuals(w, grad, groups, lam, q)
        worst = float(res.max())
        if not np.isfinite(worst):
            return w, n_outer, epochs, NON_FINITE + " gradient"
        if worst <= tol_abs:
            return w, n_outer, epochs, "stationarity <= tol"
        if epochs >= max_epochs:
            return w, n_outer, epochs, message
        score = res[:n_groups].copy()
        support = sq_w > 0
        if q < 1.0:
            fro = np.maximum(design.frobenius[:n_groups][~support], 1e-300)
            gn = np.sqrt(sq_g[~support])
            score[~support] = fro * scalar_prox(gn / fro, lam / fro, q)
        score[support] = np.inf
        ws_size = min(n_groups, max(ws_size, min_ws, 2 * int(support.sum())))
        cand = np.argpartition(-score, ws_size - 1)[:ws_size] if ws_size else np.array([], int)
        cand = cand[score[cand] > 0]
        blocks = np.sort(cand).astype(np.int64)
        if design.grp_ptr[-1] > design.grp_ptr[-2]:
            blocks = np.append(blocks, n_groups)
        if ws is None or not np.array_equal(blocks, ws.blocks):
            ws = _WorkingSet(design, problem, blocks)
        if not np.all(np.isfinite(ws.lips)):
            return (
                w,
                n_outer,
                epochs,
                NON_FINITE + " block Lipschitz constant (overflowing X)",
            )
        w_ws = w[ws.feats]
        tol_in = max(0.1 * worst, 0.3 * tol_abs)
        if loss.name == "logistic":
            n_ep, viol = _newton(ws, problem, w_ws, z, float(lam), float(q), tol_in,
                                 max_epochs - epochs)  # fmt: skip
        else:
            n_ep, viol = _ws_epochs(
                *ws.matrix, y, ws.xty, 0, none, none, none, w_ws, z, ws.ptr, ws.penalised,
                ws.lips, float(lam), float(q), max_epochs - epochs, tol_in, _ANDERSON_K,
            )  # fmt: skip
        w[ws.feats] = w_ws
        epochs += n_ep
        if np.isnan(viol):  # inf only when no epoch ran
            return w, n_outer + 1, epochs, NON_FINITE + " iterate"
    return w, _MAX_OUTER, epochs, f"reached {_MAX_OUTER} working-set iterations"
