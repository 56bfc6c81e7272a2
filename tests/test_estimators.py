"""scikit-learn estimators: the library's own estimator checks, agreement with an independent
solver, the classifier's label handling, Pipeline, GridSearchCV and the CV estimator."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from dgating.estimators import (
    EXPECTED_FAILED_CHECKS,
    DGatingClassifier,
    DGatingRegressor,
    DGatingRegressorCV,
)

from .test_solvers import cvxpy_group_lasso


def _expected_failed(estimator) -> dict[str, str]:
    return EXPECTED_FAILED_CHECKS[type(estimator).__name__]


@parametrize_with_checks(
    [DGatingRegressor(), DGatingClassifier(), DGatingRegressorCV(n_lams=5, cv=3)],
    expected_failed_checks=_expected_failed,
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the checks' fits converge
        check(estimator)


def test_no_check_is_waived():
    # Every scikit-learn check applies: binary-only is declared by the tag multi_class=False,
    # under which scikit-learn skips the multi-class checks and runs
    # check_classifier_not_supporting_multiclass instead.
    assert all(v == {} for v in EXPECTED_FAILED_CHECKS.values())
    assert DGatingClassifier().__sklearn_tags__().classifier_tags.multi_class is False
    assert all(e.__sklearn_tags__().input_tags.sparse for e in (DGatingRegressor(),))


def _regression(rng, n=60, p=12, group_size=3):
    X = rng.normal(size=(n, p)) * (rng.random((n, p)) < 0.5)
    w = np.zeros(p)
    w[: 2 * group_size] = rng.normal(scale=2.0, size=2 * group_size)
    return X, X @ w + 0.1 * rng.normal(size=n), np.arange(p) // group_size


class _Problem:
    """The attributes cvxpy_group_lasso reads, built without dgating."""

    def __init__(self, X, y, labels):
        self.X, self.y, self.n_features = X, y, X.shape[1]
        self.groups = type("G", (), {"labels": labels})()
        self.n_groups = int(labels.max()) + 1


@pytest.mark.parametrize("sparse", [False, True])
def test_regressor_agrees_with_cvxpy(rng, sparse):
    X, y, labels = _regression(rng)
    lam = 0.1
    Xin = sp.csr_matrix(X) if sparse else X
    reg = DGatingRegressor(depth=2, lam=lam, groups=labels, fit_intercept=False).fit(Xin, y)
    w_ref = cvxpy_group_lasso(_Problem(X, y, labels), lam)
    assert np.linalg.norm(reg.coef_ - w_ref) <= 1e-6 * np.linalg.norm(w_ref)
    assert reg.intercept_ == 0.0 and reg.n_iter_ > 0
    np.testing.assert_allclose(reg.predict(Xin), X @ w_ref, rtol=1e-5, atol=1e-6)
    # Negative control: another lam is a different solution.
    other = DGatingRegressor(lam=2 * lam, groups=labels, fit_intercept=False).fit(X, y)
    assert np.linalg.norm(other.coef_ - w_ref) > 1e-3 * np.linalg.norm(w_ref)


def test_intercept_is_a_free_variable_and_sparse_is_not_centred(rng):
    X, y, labels = _regression(rng)
    y = y + 5.0
    dense = DGatingRegressor(depth=3, lam=0.05, groups=labels).fit(X, y)
    sparse = DGatingRegressor(depth=3, lam=0.05, groups=labels).fit(sp.csc_matrix(X), y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-9, atol=1e-12)
    assert sparse.intercept_ == pytest.approx(dense.intercept_, rel=1e-9)
    # Optimality of the intercept: the residuals have zero mean.
    assert abs(np.mean(y - dense.predict(X))) <= 1e-8 * np.abs(y).max()
    assert dense.intercept_ == pytest.approx(5.0, abs=0.5)


def test_groups_and_unpenalised_features(rng):
    X, y, labels = _regression(rng)
    single = DGatingRegressor(lam=0.3).fit(X, y)  # groups=None: one group per feature
    grouped = DGatingRegressor(lam=0.3, groups=labels).fit(X, y)
    assert not np.allclose(single.coef_, grouped.coef_)
    free = labels.copy()
    free[-1] = -1  # feature p-1 unpenalised: non-zero although lam kills everything else
    huge = DGatingRegressor(lam=1e3, groups=free).fit(X, y)
    assert np.count_nonzero(huge.coef_) == 1 and huge.coef_[-1] != 0
    with pytest.raises(ValueError, match="groups"):
        DGatingRegressor(groups=labels[:-1]).fit(X, y)


def test_warm_start_reuses_the_previous_solution(rng):
    X, y, labels = _regression(rng)
    reg = DGatingRegressor(depth=3, lam=0.05, groups=labels, warm_start=True).fit(X, y)
    first = reg.coef_.copy()
    reg.fit(X, y)
    assert reg.n_iter_ == 0  # already stationary: no iteration
    np.testing.assert_array_equal(reg.coef_, first)
    cold = DGatingRegressor(depth=3, lam=0.05, groups=labels).fit(X, y)
    assert cold.n_iter_ > 0  # negative control


def test_convergence_warning(rng):
    X, y, labels = _regression(rng)
    with pytest.warns(ConvergenceWarning, match="tol"):
        DGatingRegressor(lam=0.05, groups=labels, max_iter=1, tol=1e-14).fit(X, y)


def test_classifier_labels_probabilities_and_binary_only(rng):
    X, _, labels = _regression(rng)
    z = X[:, :3].sum(axis=1)
    y = np.where(z > 0, "yes", "no")
    clf = DGatingClassifier(lam=0.01, groups=labels).fit(X, y)
    assert clf.classes_.tolist() == ["no", "yes"]
    assert clf.coef_.shape == (1, X.shape[1]) and clf.intercept_.shape == (1,)
    d = clf.decision_function(X)
    np.testing.assert_array_equal(clf.predict(X), np.where(d > 0, "yes", "no"))
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-d)), rtol=1e-12)
    assert clf.score(X, y) > 0.9
    # Swapping the labels flips the sign of the model (classes_[1] is the +1 class).
    swapped = DGatingClassifier(lam=0.01, groups=labels).fit(X, np.where(z > 0, "a", "b"))
    np.testing.assert_allclose(swapped.coef_, -clf.coef_, rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="Only binary"):
        DGatingClassifier().fit(X, np.arange(X.shape[0]) % 3)
    with pytest.raises(ValueError, match="class"):
        DGatingClassifier().fit(X, np.ones(X.shape[0]))


def test_pipeline_and_grid_search(rng):
    X, y, labels = _regression(rng, n=80)
    pipe = make_pipeline(StandardScaler(), DGatingRegressor(groups=labels))
    search = GridSearchCV(
        pipe, {"dgatingregressor__lam": [1e-3, 0.05, 5.0], "dgatingregressor__depth": [2, 3]}, cv=3
    )
    search.fit(X, y)
    assert search.best_params_["dgatingregressor__lam"] < 5.0  # lam = 5 zeroes every group
    assert search.best_score_ > 0.9
    # Sparse input through a sparse-preserving scaler.
    sparse_pipe = make_pipeline(MaxAbsScaler(), DGatingRegressor(lam=0.01, groups=labels))
    assert sparse_pipe.fit(sp.csr_matrix(X), y).score(sp.csr_matrix(X), y) > 0.9
    clf = GridSearchCV(DGatingClassifier(groups=labels), {"lam": [1e-3, 1e-2]}, cv=3)
    assert clf.fit(X, np.sign(y)).best_score_ > 0.8


@pytest.mark.parametrize("depth", [2, 3])
def test_regressor_cv_selects_by_mean_validation_mse(rng, depth):
    X, y, labels = _regression(rng, n=80)
    cv = KFold(4)
    est = DGatingRegressorCV(depth, n_lams=8, cv=cv, groups=labels).fit(X, y)
    assert est.lams_.shape == (8,) and est.mse_path_.shape == (8, 4)
    best = int(np.argmin(est.mse_path_.mean(axis=1)))
    assert est.lam_ == est.lams_[best]
    if depth == 2:
        # Convex: each path point is the unique minimiser, so one fold is recomputed by cold
        # single fits, and the refit equals a single fit at lam_.
        train, test = next(cv.split(X))
        for k, lam in enumerate(est.lams_):
            reg = DGatingRegressor(2, lam=lam, groups=labels).fit(X[train], y[train])
            mse = np.mean((y[test] - reg.predict(X[test])) ** 2)
            assert est.mse_path_[k, 0] == pytest.approx(mse, rel=1e-6)
        final = DGatingRegressor(2, lam=est.lam_, groups=labels).fit(X, y)
        # Both solve the same convex problem to relative stationarity 1e-8; compare in the norm
        # of the solution (an elementwise rtol is too strict for coefficients near 0).
        assert np.linalg.norm(est.coef_ - final.coef_) <= 1e-6 * np.linalg.norm(final.coef_)
    assert est.score(X, y) > 0.9
    # The same selection on sparse X.
    sparse = DGatingRegressorCV(depth, n_lams=8, cv=cv, groups=labels).fit(sp.csr_matrix(X), y)
    assert sparse.lam_ == pytest.approx(est.lam_, rel=1e-12)  # lam_max: same up to round-off
    np.testing.assert_allclose(sparse.mse_path_, est.mse_path_, rtol=1e-7)
