r"""scikit-learn estimators for the group :math:`L_{2,2/D}` problem.

* :class:`DGatingRegressor`: squared loss, :math:`\min_{w, b} \frac{1}{2n}\|y - Xw - b\|^2 +
  \lambda\sum_j\|w_{G_j}\|^{2/D}`.
* :class:`DGatingClassifier`: binary logistic loss on labels mapped to :math:`\pm 1`.
* :class:`DGatingRegressorCV`: :class:`DGatingRegressor` with :math:`\lambda` chosen by K-fold
  cross-validation along a regularisation path (:func:`dgating.paths.solve_path`).

They accept dense or ``scipy.sparse`` (CSR/CSC) ``X``; a sparse ``X`` is never densified or
centred: the intercept :math:`b` is an unpenalised, ungated variable of the fit (label ``-1``,
:meth:`~dgating.problem.GroupedProblem.with_intercept`). ``groups=None`` puts every feature in
its own group (the :math:`\ell_{2/D}` penalty on single coefficients); label ``-1`` leaves a
feature unpenalised.

Checks that do not apply (:data:`EXPECTED_FAILED_CHECKS`): none for the regressors. The
classifier is binary only (the tags say ``multi_class=False``), so scikit-learn skips its
multi-class checks; fitting on more than two classes raises a ``ValueError``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import check_cv
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from .paths import _check_lams, _default_lams, solve_path
from .problem import GroupedProblem
from .solvers import solve

__all__ = [
    "EXPECTED_FAILED_CHECKS",
    "DGatingClassifier",
    "DGatingRegressor",
    "DGatingRegressorCV",
]

#: ``parametrize_with_checks(..., expected_failed_checks=...)`` entries: check -> reason.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "DGatingRegressor": {},
    "DGatingClassifier": {},
    "DGatingRegressorCV": {},
}

_SPARSE = ("csr", "csc")


def _labels(groups: object, n_features: int) -> np.ndarray:
    """Group labels of the features: ``arange(n_features)`` for ``None``."""
    if groups is None:
        return np.arange(n_features)
    labels = np.asarray(groups)
    if labels.shape != (n_features,):
        raise ValueError(
            f"`groups` must have shape (n_features,) = ({n_features},); got {labels.shape}."
        )
    return labels


def _problem(X, y: np.ndarray, labels: np.ndarray, fit_intercept: bool, loss: str):
    """The :class:`GroupedProblem` of a fit, with an intercept column (label ``-1``) if asked."""
    if fit_intercept:
        return GroupedProblem.with_intercept(X, y, labels, loss)
    return GroupedProblem(X, y, labels, loss)


def _split(w: np.ndarray, fit_intercept: bool) -> tuple[np.ndarray, float]:
    """``(coef, intercept)`` from the solution vector (the intercept is its last entry)."""
    return (w[:-1], float(w[-1])) if fit_intercept else (w, 0.0)


class _SparseInput(BaseEstimator):
    """Tags: dense or scipy.sparse ``X``."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _scores(estimator: BaseEstimator, w: np.ndarray, b: float, X) -> np.ndarray:
    """:math:`Xw + b` on ``X`` validated against the (fitted) ``estimator``."""
    X = validate_data(estimator, X, accept_sparse=_SPARSE, dtype=np.float64, reset=False)
    return X @ w + b


class _LinearPredict:
    """``predict`` of the regressors from ``coef_`` and ``intercept_``."""

    def predict(self, X) -> np.ndarray:
        """:math:`Xw + b`, shape (n_samples,)."""
        check_is_fitted(self)
        return _scores(self, self.coef_, self.intercept_, X)


class _DGatingLinear(_SparseInput):
    """Shared parameters and fit of :class:`DGatingRegressor` and :class:`DGatingClassifier`."""

    _loss = "squared"

    def __init__(
        self,
        depth: int = 2,
        lam: float = 0.01,
        *,
        groups: np.ndarray | None = None,
        fit_intercept: bool = True,
        method: str = "prox",
        tol: float = 1e-8,
        max_iter: int = 20_000,
        warm_start: bool = False,
    ) -> None:
        self.depth = depth
        self.lam = lam
        self.groups = groups
        self.fit_intercept = fit_intercept
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _solve(self, X, y: np.ndarray) -> np.ndarray:
        """Fit on validated ``X`` and targets ``y`` (``±1`` for the logistic loss); returns the
        solution, intercept last when ``fit_intercept``."""
        problem = _problem(X, y, _labels(self.groups, X.shape[1]), self.fit_intercept, self._loss)
        w0 = None
        coef = getattr(self, "coef_", None)
        if self.warm_start and coef is not None and coef.size == X.shape[1]:
            w0 = np.append(coef.ravel(), np.ravel(self.intercept_)) if self.fit_intercept else coef
            w0 = np.asarray(w0, dtype=float).ravel()
        res = solve(
            problem,
            self.depth,
            self.lam,
            method=self.method,
            w0=w0,
            tol=self.tol,
            max_iter=self.max_iter,
        )
        if not res.converged:
            warnings.warn(
                f"{type(self).__name__} did not reach tol={self.tol:g} (relative stationarity "
                f"{res.stationarity:.2e}, {res.message}); increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.n_iter_ = res.iterations
        return res.w


class DGatingRegressor(RegressorMixin, _LinearPredict, _DGatingLinear):
    r"""Least squares with the D-Gating group penalty,
    :math:`\min_{w,b} \frac{1}{2n}\|y - Xw - b\|^2 + \lambda\sum_j\|w_{G_j}\|_2^{2/D}`.

    Parameters
    ----------
    depth : int, default=2
        :math:`D \ge 2`; :math:`q = 2/D` (2: group lasso; 3, 4, ...: non-convex, a local
        minimum is returned).
    lam : float, default=0.01
        :math:`\lambda \ge 0`.
    groups : array-like of int, shape (n_features,), optional
        Group label per feature (``0..J-1``, ``-1`` unpenalised); ``None``: one group per
        feature.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept :math:`b` (as a variable; ``X`` is not centred).
    method : {"prox", "gated"}, default="prox"
        Solver, :func:`dgating.solve`.
    tol : float, default=1e-8
        Relative stationarity target.
    max_iter : int, default=20000
        Iteration budget of the solver.
    warm_start : bool, default=False
        Start from the previous ``coef_`` and ``intercept_`` (same number of features).

    Attributes
    ----------
    coef_ : ndarray, shape (n_features,)
        :math:`w`.
    intercept_ : float
        :math:`b` (0 without ``fit_intercept``).
    n_iter_ : int
        Solver iterations.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    >>> reg = DGatingRegressor(depth=2, lam=0.01).fit(X, X @ [2.0, 0.0] + 1.0)
    >>> reg.coef_.round(3).tolist(), round(reg.intercept_, 3)
    ([1.96, 0.0], 1.02)
    """

    def fit(self, X, y) -> DGatingRegressor:
        """Fit on ``X`` (n_samples, n_features), dense or sparse, and ``y`` (n_samples,)."""
        X, y = validate_data(self, X, y, accept_sparse=_SPARSE, dtype=np.float64, y_numeric=True)
        self.coef_, self.intercept_ = _split(self._solve(X, y), self.fit_intercept)
        return self


class DGatingClassifier(ClassifierMixin, _DGatingLinear):
    r"""Binary logistic regression with the D-Gating group penalty,
    :math:`\min_{w,b} \frac1n\sum_i \log(1 + e^{-y_i(x_i^\top w + b)}) +
    \lambda\sum_j\|w_{G_j}\|_2^{2/D}`, with ``classes_[0]`` :math:`\mapsto -1` and
    ``classes_[1]`` :math:`\mapsto +1`.

    Parameters are those of :class:`DGatingRegressor`. Only two classes: fitting on more (or
    fewer) raises a ``ValueError``.

    Attributes
    ----------
    classes_ : ndarray, shape (2,)
        The class labels, sorted.
    coef_ : ndarray, shape (1, n_features)
        :math:`w` (scikit-learn's binary linear-classifier layout).
    intercept_ : ndarray, shape (1,)
        :math:`b`.
    n_iter_ : int
        Solver iterations.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[-2.0, 0.3], [-1.0, -0.2], [1.0, 0.1], [2.0, -0.4]])
    >>> clf = DGatingClassifier(lam=0.05).fit(X, ["no", "no", "yes", "yes"])
    >>> clf.predict(X).tolist(), float(clf.coef_[0, 1])
    (['no', 'no', 'yes', 'yes'], 0.0)
    """

    _loss = "logistic"

    def fit(self, X, y) -> DGatingClassifier:
        """Fit on ``X`` (n_samples, n_features), dense or sparse, and two-class ``y``."""
        X, y = validate_data(self, X, y, accept_sparse=_SPARSE, dtype=np.float64)
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {y_type}."
            )
        self.classes_ = np.unique(y)
        if self.classes_.size != 2:
            raise ValueError(
                f"{type(self).__name__} needs exactly 2 classes in `y` (binary logistic loss); "
                f"got 1 class: {self.classes_.tolist()}."
            )
        signs = np.where(y == self.classes_[1], 1.0, -1.0)
        coef, intercept = _split(self._solve(X, signs), self.fit_intercept)
        self.coef_, self.intercept_ = coef[None, :], np.array([intercept])
        return self

    def decision_function(self, X) -> np.ndarray:
        """:math:`x^\top w + b` per sample, shape (n_samples,); positive means ``classes_[1]``."""
        check_is_fitted(self)
        return _scores(self, self.coef_[0], self.intercept_[0], X)

    def predict(self, X) -> np.ndarray:
        """``classes_[1]`` where :meth:`decision_function` is positive, else ``classes_[0]``."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]

    def predict_proba(self, X) -> np.ndarray:
        r""":math:`P(\text{classes\_}[1] \mid x) = \sigma(x^\top w + b)`; shape (n_samples, 2)."""
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class DGatingRegressorCV(RegressorMixin, _LinearPredict, _SparseInput):
    r""":class:`DGatingRegressor` with :math:`\lambda` selected by K-fold cross-validation.

    On every fold, :func:`~dgating.paths.solve_path` solves the training part along the grid
    (warm starts); ``lam_`` minimises the validation mean squared error averaged over folds;
    the final model is the full-data path from ``lams_[0]`` down to ``lam_`` (for
    :math:`D \ge 3` the path follows one local minimum, so the refit is the point of the same
    path rather than a cold solve).

    Parameters
    ----------
    depth : int, default=2
        :math:`D \ge 2`.
    lams : array-like of float, optional
        The grid (sorted decreasing); by default :func:`~dgating.paths.lam_grid` from the
        full-data :func:`~dgating.paths.lam_max`.
    n_lams : int, default=30
        Size of the default grid.
    lam_min_ratio : float, default=1e-3
        Smallest over largest :math:`\lambda` of the default grid.
    cv : int or cross-validation generator, default=5
        As in scikit-learn (an int means ``KFold(cv)``).
    groups, fit_intercept, method, tol, max_iter
        As in :class:`DGatingRegressor`.

    Attributes
    ----------
    lam_ : float
        The selected :math:`\lambda`.
    lams_ : ndarray, shape (K,)
        The grid, decreasing.
    mse_path_ : ndarray, shape (K, n_folds)
        Validation mean squared error per grid point and fold.
    coef_, intercept_, n_iter_, n_features_in_
        As in :class:`DGatingRegressor` (``n_iter_``: iterations of the refit path).
    """

    def __init__(
        self,
        depth: int = 2,
        *,
        lams: np.ndarray | None = None,
        n_lams: int = 30,
        lam_min_ratio: float = 1e-3,
        cv=5,
        groups: np.ndarray | None = None,
        fit_intercept: bool = True,
        method: str = "prox",
        tol: float = 1e-8,
        max_iter: int = 20_000,
    ) -> None:
        self.depth = depth
        self.lams = lams
        self.n_lams = n_lams
        self.lam_min_ratio = lam_min_ratio
        self.cv = cv
        self.groups = groups
        self.fit_intercept = fit_intercept
        self.method = method
        self.tol = tol
        self.max_iter = max_iter

    def _path(self, X, y: np.ndarray, lams: np.ndarray):
        problem = _problem(X, y, _labels(self.groups, X.shape[1]), self.fit_intercept, "squared")
        return solve_path(
            problem, self.depth, lams, method=self.method, tol=self.tol, max_iter=self.max_iter
        )

    def fit(self, X, y) -> DGatingRegressorCV:
        """Select ``lam_`` by cross-validation, then refit on all of ``X``, ``y``."""
        X, y = validate_data(self, X, y, accept_sparse=_SPARSE, dtype=np.float64, y_numeric=True)
        labels = _labels(self.groups, X.shape[1])
        if self.lams is None:
            full = _problem(X, y, labels, self.fit_intercept, "squared")
            lams = _default_lams(full, self.depth, self.n_lams, self.lam_min_ratio)[1]
        else:
            lams = _check_lams(self.lams)
        folds = list(check_cv(self.cv).split(X, y))
        mse = np.empty((lams.size, len(folds)))
        for f, (train, test) in enumerate(folds):
            coefs = self._path(X[train], y[train], lams).coefs
            coef, intercept = (coefs[:, :-1], coefs[:, -1]) if self.fit_intercept else (coefs, 0)
            pred = (X[test] @ coef.T) + intercept
            mse[:, f] = np.mean((y[test][:, None] - pred) ** 2, axis=0)
        best = int(np.argmin(mse.mean(axis=1)))
        path = self._path(X, y, lams[: best + 1])
        self.coef_, self.intercept_ = _split(path.coefs[-1], self.fit_intercept)
        self.lam_, self.lams_, self.mse_path_ = float(lams[best]), lams, mse
        self.n_iter_ = int(path.iterations.sum())
        return self
