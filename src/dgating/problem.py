r"""Problems: a smooth data term :math:`L_0(w)` together with a feature grouping.

Two kinds share one interface (``value``, ``grad``, ``hvp``, ``hessian``, ``groups``):

* :class:`GroupedProblem` for generalised linear models, :math:`L_0(w) = \ell(Xw; y)`, with
  analytic derivatives;
* :class:`TorchProblem` for any torch callable :math:`L_0`, differentiated by autograd (networks).

Everything downstream (objectives, solvers, certificates, simulations) uses only that interface.

A :class:`GroupedProblem` also takes a ``scipy.sparse`` design matrix, which it keeps sparse (CSC):
it only ever forms :math:`Xv`, :math:`X^\top r`, column slices and the small Gram matrices
:math:`X_S^\top \operatorname{diag}(c) X_S` of a support :math:`S`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ._validation import LIMITS, InputError, InvalidParameterError, check_array, check_choice
from .groups import Groups
from .losses import Loss, get_loss

__all__ = ["GroupedProblem", "Problem", "TorchProblem", "load_problem", "no_minimiser"]


def _check_design(X: object) -> np.ndarray | sp.csc_array:
    """``X`` as a dense float64 2-d array, or, for any ``scipy.sparse`` input, as a float64
    ``csc_array`` (CSR and other formats are converted without densifying)."""
    if not sp.issparse(X):
        return check_array(X, "X", ndim=2)
    if X.ndim != 2:
        raise InvalidParameterError(f"`X` must be a 2-d array; got {X.ndim}-d sparse matrix.")
    X = sp.csc_array(X, dtype=np.float64)
    X.sum_duplicates()
    if not np.all(np.isfinite(X.data)):
        n_bad = int(X.data.size - np.count_nonzero(np.isfinite(X.data)))
        raise InvalidParameterError(
            f"`X` must contain only finite values; got {n_bad} NaN or infinite entries."
        )
    return X


class Problem:
    """Interface shared by :class:`GroupedProblem` and :class:`TorchProblem`."""

    groups: Groups

    @property
    def n_features(self) -> int:
        return self.groups.n_features

    @property
    def n_groups(self) -> int:
        return self.groups.n_groups

    def value(self, w: np.ndarray) -> float:
        raise NotImplementedError

    def grad(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def value_and_grad(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        return self.value(w), self.grad(w)

    def hvp(self, w: np.ndarray, v: np.ndarray) -> np.ndarray:
        r"""Hessian-vector product :math:`\nabla^2 L_0(w) v`, shape ``(n_features,)``."""
        raise NotImplementedError

    def hessian(self, w: np.ndarray) -> np.ndarray:
        r"""Dense Hessian :math:`\nabla^2 L_0(w)`, shape ``(n_features, n_features)``."""
        eye = np.eye(self.n_features)
        h = np.stack([self.hvp(w, e) for e in eye], axis=1)
        return 0.5 * (h + h.T)

    def lipschitz(self) -> float:
        r"""An upper bound on the Lipschitz constant of :math:`\nabla L_0` (``nan`` if unknown)."""
        return float("nan")


@dataclass(frozen=True, eq=False)
class GroupedProblem(Problem):
    r"""Generalised linear model :math:`L_0(w) = \ell(Xw;\, y)` with grouped features.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n_samples, n_features)
        Design matrix (add a column of ones labelled ``-1`` for an unpenalised intercept, see
        :meth:`with_intercept`). A sparse ``X`` is stored as a float64 ``csc_array`` and never
        densified.
    y : ndarray, shape (n_samples,)
        Targets; ``-1``/``+1`` for the logistic loss.
    groups : ndarray of int, shape (n_features,), or Groups
        Group labels, ``-1`` for unpenalised features.
    loss : {"squared", "logistic"} or Loss, default="squared"
        :math:`\ell(z; y) = \frac{1}{2n}\|y - z\|^2` or
        :math:`\frac{1}{n}\sum_i \log(1 + e^{-y_i z_i})`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> prob = GroupedProblem(X, np.array([1.0, 2.0]), np.array([0, 1]))
    >>> prob.value(np.zeros(2)), prob.grad(np.zeros(2)).tolist()
    (1.25, [-0.5, -2.0])
    """

    X: np.ndarray | sp.csc_array
    y: np.ndarray
    groups: Groups
    loss: Loss = field(default="squared")  # type: ignore[assignment]

    def __post_init__(self) -> None:
        X = _check_design(self.X)
        n, p = X.shape
        if n == 0 or p == 0:
            raise InvalidParameterError(
                f"`X` must have at least one row and column; got {X.shape}."
            )
        y = check_array(self.y, "y", ndim=1)
        if y.shape != (n,):
            raise InvalidParameterError(
                f"`y` must have shape (n_samples,) = ({n},); got {y.shape}."
            )
        groups = self.groups if isinstance(self.groups, Groups) else Groups(self.groups)
        if groups.n_features != p:
            raise InvalidParameterError(
                f"`groups` must have shape (n_features,) = ({p},); got ({groups.n_features},)."
            )
        loss = get_loss(self.loss)
        loss.check_targets(y)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "loss", loss)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @classmethod
    def with_intercept(
        cls,
        X: np.ndarray | sp.sparray | sp.spmatrix,
        y: np.ndarray,
        groups: np.ndarray,
        loss: str | Loss = "squared",
    ) -> GroupedProblem:
        """Append a column of ones with label ``-1``: an unpenalised, ungated intercept.

        The intercept is a free variable of the fit, so a sparse ``X`` is never centred.
        """
        X = _check_design(X)
        labels = np.append(np.asarray(groups), -1)
        ones = np.ones((X.shape[0], 1))
        if sp.issparse(X):
            return cls(sp.hstack([X, sp.csc_array(ones)], format="csc"), y, labels, loss)
        return cls(np.hstack([X, ones]), y, labels, loss)

    def value(self, w: np.ndarray) -> float:
        return self.loss.value(self.X @ w, self.y)

    def grad(self, w: np.ndarray) -> np.ndarray:
        return self.X.T @ self.loss.derivative(self.X @ w, self.y)

    def value_and_grad(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        z = self.X @ w
        return self.loss.value(z, self.y), self.X.T @ self.loss.derivative(z, self.y)

    def hvp(self, w: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.X.T @ (self.loss.curvature(self.X @ w, self.y) * (self.X @ v))

    def hessian(self, w: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        r"""Dense Hessian :math:`X_S^\top \operatorname{diag}(\ell''(Xw)) X_S` on the columns
        ``idx`` (all by default), shape ``(k, k)``; a sparse ``X`` only densifies this block."""
        c = self.loss.curvature(self.X @ w, self.y)
        Xs = self.X if idx is None else self.X[:, idx]
        if sp.issparse(Xs):
            return (Xs.T @ (sp.dia_array((c, 0), shape=(c.size, c.size)) @ Xs)).toarray()
        return Xs.T @ (c[:, None] * Xs)

    def lipschitz(self) -> float:
        r""":math:`\|X\|_2^2 \sup \ell''`; for a sparse ``X``, :math:`\|X\|_2^2` is the largest
        eigenvalue of the sparse Gram matrix :math:`X^\top X` (ARPACK, or dense for small p).
        Computed once per problem (an SVD or eigensolve), then cached."""
        cached = self.__dict__.get("_lipschitz")
        if cached is not None:
            return cached
        if not sp.issparse(self.X):
            sq_norm = float(np.linalg.norm(self.X, 2) ** 2)
        elif self.n_features <= 500:
            sq_norm = float(np.linalg.eigvalsh((self.X.T @ self.X).toarray())[-1])
        else:
            from scipy.sparse.linalg import eigsh

            gram, v0 = self.X.T @ self.X, np.ones(self.n_features)  # fixed start: reproducible
            sq_norm = float(eigsh(gram, k=1, v0=v0, return_eigenvectors=False)[0])
        cached = sq_norm * self.loss.curvature_bound(self.n_samples)
        object.__setattr__(self, "_lipschitz", cached)
        return cached


class TorchProblem(Problem):
    r"""Any smooth torch callable :math:`L_0 : \mathbb{R}^p \to \mathbb{R}` (e.g. a network's loss
    as a function of its flattened weights), differentiated with autograd in float64.

    Parameters
    ----------
    fn : callable
        ``fn(w: torch.Tensor of shape (n_features,)) -> torch.Tensor scalar``.
    groups : ndarray of int, shape (n_features,), or Groups
        Group labels, ``-1`` for unpenalised weights.

    Examples
    --------
    >>> import numpy as np
    >>> prob = TorchProblem(lambda w: 0.5 * (w**2).sum(), np.array([0, 0]))
    >>> prob.grad(np.array([1.0, -2.0])).tolist()
    [1.0, -2.0]
    """

    def __init__(self, fn: Callable, groups: np.ndarray | Groups) -> None:
        if not callable(fn):
            raise InputError(f"`fn` must be callable; got {type(fn).__name__}.")
        self.fn = fn
        self.groups = groups if isinstance(groups, Groups) else Groups(groups)

    def _tensor(self, w: np.ndarray, requires_grad: bool = True):
        import torch

        return torch.tensor(np.asarray(w, dtype=np.float64), requires_grad=requires_grad)

    def value(self, w: np.ndarray) -> float:
        import torch

        with torch.no_grad():
            return float(self.fn(self._tensor(w, requires_grad=False)))

    def value_and_grad(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        import torch

        wt = self._tensor(w)
        val = self.fn(wt)
        (g,) = torch.autograd.grad(val, wt)
        return float(val.detach()), g.numpy()

    def grad(self, w: np.ndarray) -> np.ndarray:
        return self.value_and_grad(w)[1]

    def hvp(self, w: np.ndarray, v: np.ndarray) -> np.ndarray:
        import torch

        wt = self._tensor(w)
        (g,) = torch.autograd.grad(self.fn(wt), wt, create_graph=True)
        (hv,) = torch.autograd.grad(g, wt, grad_outputs=torch.as_tensor(np.asarray(v, float)))
        return hv.numpy()


def _read_member(data: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """Read one array of an open ``.npz`` after checking its header: a real numeric dtype and
    at most ``LIMITS["elements"]`` entries, so that nothing absurd is decompressed."""
    from numpy.lib import format as npy_format

    try:
        with data.zip.open(f"{key}.npy") as fh:
            version = npy_format.read_magic(fh)
            read = {(1, 0): npy_format.read_array_header_1_0}.get(
                version, npy_format.read_array_header_2_0
            )
            shape, _, dtype = read(fh)
    except Exception as exc:  # a member that is not an .npy array
        raise InvalidParameterError(
            f"`DATA` array {key!r} must be a .npy array; got '{path}' ({type(exc).__name__})."
        ) from None
    if dtype.kind not in "biuf":
        raise InvalidParameterError(
            f"`DATA` array {key!r} must be real numbers (bool, int or float); got dtype "
            f"{dtype} in '{path}'."
        )
    size = int(np.prod(shape, dtype=object))
    if size > LIMITS["elements"]:
        raise InvalidParameterError(
            f"`DATA` array {key!r} must have at most {LIMITS['elements']:,} entries; got shape "
            f"{shape} in '{path}'."
        )
    try:
        arr = data[key]
    except Exception as exc:  # truncated or corrupt compressed data
        raise InvalidParameterError(
            f"`DATA` array {key!r} must be readable; got '{path}' ({type(exc).__name__}: {exc})."
        ) from None
    if key != "groups" and arr.size and np.all(np.isfinite(arr)):
        big = float(np.max(np.abs(arr)))
        if big > LIMITS["magnitude"]:
            raise InvalidParameterError(
                f"`DATA` array {key!r} must have entries of magnitude <= {LIMITS['magnitude']:g}; "
                f"got {big:.3g} in '{path}' (rescale the data)."
            )
    return arr


def load_problem(path: str | Path, loss: str = "squared") -> GroupedProblem:
    """Read a :class:`GroupedProblem` from an ``.npz`` file holding ``X``, ``y`` and ``groups``.

    Only these three arrays are read, each after its header is checked (real numeric dtype, at
    most ``LIMITS["elements"]`` entries); other arrays in the file are ignored unread. ``X`` and
    ``y`` must be finite with magnitudes at most ``LIMITS["magnitude"]``.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file: ``X`` (n_samples, n_features), ``y`` (n_samples,), ``groups``
        (n_features,) integer labels with ``-1`` for unpenalised features.
    loss : {"squared", "logistic"}, default="squared"
        The data term.

    Returns
    -------
    GroupedProblem

    Raises
    ------
    InvalidParameterError
        If the file is missing, unreadable, lacks a key, or holds invalid arrays (complex,
        object, string, non-finite, oversized or absurdly scaled).
    """
    check_choice(loss, "loss", ("squared", "logistic"))
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(
            f"`DATA` must be an existing .npz file; got '{path}' (not found)."
        )
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # any unreadable file becomes one input error
        raise InvalidParameterError(
            f"`DATA` must be a readable .npz file; got '{path}' ({type(exc).__name__}: {exc})."
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InvalidParameterError(
            f"`DATA` must be a .npz file (np.savez); got '{path}' (a single .npy array)."
        )
    with data:
        missing = [k for k in ("X", "y", "groups") if k not in data.files]
        if missing:
            raise InvalidParameterError(
                f"`DATA` must hold the arrays X, y and groups; got '{path}' without "
                f"{', '.join(missing)}."
            )
        arrays = {k: _read_member(data, k, path) for k in ("X", "y", "groups")}
    return GroupedProblem(arrays["X"], arrays["y"], arrays["groups"], loss)


def no_minimiser(problem: GroupedProblem, lam: float, tol: float = 1e-7) -> bool:
    r"""Whether :math:`L_w = L_0 + \lambda\sum_j\|w_j\|^{2/D}` has no minimiser because the
    logistic loss decreases forever along a direction.

    For the logistic loss with margins :math:`m_i(d) = y_i x_i^\top d`, if some direction
    :math:`d` has :math:`m_i(d) \ge 0` for every :math:`i` and :math:`m_i(d) > 0` for one, then
    :math:`L_0(v + t d)` is strictly decreasing in :math:`t` for every :math:`v`, so no point is a
    minimiser (the data are (quasi-)separable). With :math:`\lambda > 0` the penalty is coercive
    on the penalised groups and only directions in the unpenalised features (label ``-1``) count.
    Conversely, if no such direction exists the loss is coercive on the relevant subspace modulo
    its null space and a minimiser exists. Decided by the linear programme
    :math:`\max \sum_i m_i(d)` subject to :math:`0 \le m_i(d) \le 1`, whose optimum is positive
    exactly in the separable case. The squared loss always has a minimiser.

    Examples
    --------
    >>> X = np.array([[1.0], [2.0]])
    >>> no_minimiser(GroupedProblem(X, np.array([1.0, 1.0]), np.array([0]), "logistic"), 0.0)
    True
    >>> no_minimiser(GroupedProblem(X, np.array([1.0, -1.0]), np.array([0]), "logistic"), 0.0)
    False
    """
    from scipy.optimize import linprog

    if problem.loss.name != "logistic":
        return False
    free = np.ones(problem.n_features, bool) if lam == 0 else ~problem.groups.penalised
    if not free.any():
        return False
    A = problem.y[:, None] * problem.X[:, free]
    scale = np.abs(A).max()
    if scale == 0:
        return False
    A = A / scale
    res = linprog(
        -A.sum(axis=0),
        A_ub=np.vstack([A, -A]),
        b_ub=np.concatenate([np.ones(len(A)), np.zeros(len(A))]),
        bounds=(None, None),
        method="highs",
    )
    return bool(res.status == 0 and -res.fun > tol)
