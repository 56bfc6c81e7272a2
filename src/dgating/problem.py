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

from ._validation import InputError, InvalidParameterError, check_array, check_choice
from .groups import Groups
from .losses import Loss, get_loss

__all__ = ["GroupedProblem", "Problem", "TorchProblem", "load_problem"]


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


def load_problem(path: str | Path, loss: str = "squared") -> GroupedProblem:
    """Read a :class:`GroupedProblem` from an ``.npz`` file holding ``X``, ``y`` and ``groups``.

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
        If the file is missing, unreadable, lacks a key, or holds invalid arrays.
    """
    check_choice(loss, "loss", ("squared", "logistic"))
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(
            f"`DATA` must be an existing .npz file; got '{path}' (not found)."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # any unreadable file becomes one input error
        raise InvalidParameterError(
            f"`DATA` must be a readable .npz file; got '{path}' ({type(exc).__name__}: {exc})."
        ) from None
    missing = [k for k in ("X", "y", "groups") if k not in arrays]
    if missing:
        raise InvalidParameterError(
            f"`DATA` must hold the arrays X, y and groups; got '{path}' without "
            f"{', '.join(missing)}."
        )
    return GroupedProblem(arrays["X"], arrays["y"], arrays["groups"], loss)
