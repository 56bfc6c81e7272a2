"""A scipy.sparse design matrix: kept sparse, and the same solutions as the dense one."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dgating import GroupedProblem, certify, solve, solve_path
from dgating._validation import InvalidParameterError

from .test_solvers import cvxpy_group_lasso

FORMATS = {"csr": sp.csr_matrix, "csc": sp.csc_array}


def sparse_data(rng, n=60, p=20, group_size=4, density=0.3, loss="squared"):
    """A sparse Gaussian design, two active groups, noise 0.1."""
    X = rng.normal(size=(n, p)) * (rng.random((n, p)) < density)
    w = np.zeros(p)
    w[: 2 * group_size] = rng.normal(scale=2.0, size=2 * group_size)
    z = X @ w + 0.1 * rng.normal(size=n)
    y = np.where(z >= 0, 1.0, -1.0) if loss == "logistic" else z + 1.0
    return X, y, np.arange(p) // group_size


@pytest.mark.parametrize("fmt", FORMATS)
def test_problem_keeps_sparse_csc(rng, fmt):
    X, y, groups = sparse_data(rng)
    Xs = FORMATS[fmt](X)
    prob = GroupedProblem.with_intercept(Xs, y, groups)
    assert isinstance(prob.X, sp.csc_array) and prob.X.nnz == np.count_nonzero(X) + X.shape[0]
    dense = GroupedProblem.with_intercept(X, y, groups)
    w = rng.normal(size=prob.n_features)
    v = rng.normal(size=prob.n_features)
    assert prob.value(w) == pytest.approx(dense.value(w), rel=1e-14)
    np.testing.assert_allclose(prob.grad(w), dense.grad(w), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(prob.hvp(w, v), dense.hvp(w, v), rtol=1e-13, atol=1e-15)
    idx = np.array([0, 3, 7, 20])
    np.testing.assert_allclose(prob.hessian(w, idx), dense.hessian(w)[np.ix_(idx, idx)], 1e-13)
    # Exact spectral bound, both the small-p (dense Gram) and the large-p (ARPACK) branch.
    assert prob.lipschitz() == pytest.approx(dense.lipschitz(), rel=1e-12)
    wide = sp.random(30, 600, density=0.02, random_state=0, format="csc")
    lip = GroupedProblem(wide, np.zeros(30), np.arange(600)).lipschitz()
    assert lip == pytest.approx(np.linalg.norm(wide.toarray(), 2) ** 2 / 30, rel=1e-10)


def test_invalid_sparse_input(rng):
    X = sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 2.0]]))
    with pytest.raises(InvalidParameterError, match="finite"):
        GroupedProblem(X, np.zeros(2), np.array([0, 1]))
    with pytest.raises(InvalidParameterError, match="n_features"):
        GroupedProblem(sp.eye_array(2, format="csc"), np.zeros(2), np.array([0, 1, 2]))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("method", ["prox", "gated"])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("depth", [2, 3])
def test_sparse_and_dense_give_the_same_solution(rng, fmt, method, loss, depth):
    X, y, groups = sparse_data(rng, loss=loss)
    dense = GroupedProblem.with_intercept(X, y, groups, loss)
    sparse = GroupedProblem.with_intercept(FORMATS[fmt](X), y, groups, loss)
    lam = 0.2 * float(np.max(dense.groups.norms(dense.grad(np.zeros(dense.n_features)))))
    a = solve(dense, depth, lam, method=method)
    b = solve(sparse, depth, lam, method=method)
    assert a.converged and b.converged
    # Same iterates up to the summation order of X @ v: equal far below the solver tolerance.
    assert np.linalg.norm(a.w - b.w) <= 1e-9 * np.linalg.norm(a.w)
    np.testing.assert_array_equal(a.support(dense.groups), b.support(sparse.groups))
    cert_a, cert_b = certify(dense, depth, lam, a.w), certify(sparse, depth, lam, b.w)
    assert cert_a.passed and cert_b.passed
    assert cert_b.min_eigenvalue == pytest.approx(cert_a.min_eigenvalue, rel=1e-8, abs=1e-12)
    # Negative control: the sparse certificate rejects a perturbed point.
    assert not certify(sparse, depth, lam, b.w * (1 + 1e-4)).passed


@pytest.mark.parametrize("depth", [2, 3])
def test_sparse_path_equals_dense_path(rng, depth):
    X, y, groups = sparse_data(rng)
    dense = solve_path(GroupedProblem.with_intercept(X, y, groups), depth, n_lams=6)
    sparse = solve_path(GroupedProblem.with_intercept(sp.csr_array(X), y, groups), depth, n_lams=6)
    np.testing.assert_allclose(sparse.lams, dense.lams, rtol=1e-12)
    np.testing.assert_array_equal(sparse.supports, dense.supports)
    assert np.abs(sparse.coefs - dense.coefs).max() <= 1e-9 * np.abs(dense.coefs).max()


@pytest.mark.parametrize("shape", [(60, 20), (30, 40)])
def test_group_lasso_on_sparse_data_agrees_with_cvxpy(rng, shape):
    n, p = shape
    X, y, groups = sparse_data(rng, n=n, p=p, density=0.25)
    prob = GroupedProblem(sp.csc_array(X), y, groups)
    lam = 0.3 * float(np.max(prob.groups.norms(prob.grad(np.zeros(p)))))
    w_cvx = cvxpy_group_lasso(prob, lam)  # cvxpy on the sparse matrix itself
    scale = np.linalg.norm(w_cvx)
    for method in ("prox", "gated"):
        w = solve(prob, 2, lam, method=method).w
        assert np.linalg.norm(w - w_cvx) <= 1e-6 * scale
    # Negative control: the solution at a 1% larger lam is outside the tolerance.
    assert np.linalg.norm(solve(prob, 2, 1.01 * lam).w - w_cvx) > 1e-4 * scale


def test_nothing_densifies_the_design(rng, monkeypatch):
    """Trap: densifying any matrix with n_samples rows (X or a row block of it) raises; only
    the k x k Hessian blocks of a support may become dense."""
    from dgating.estimators import DGatingClassifier, DGatingRegressor

    n = 73  # no Gram block has 73 rows (p = 20, plus an intercept)
    X, y, groups = sparse_data(rng, n=n)

    def trap(original):
        def toarray(self, *args, **kwargs):
            if self.shape[0] == n:
                raise AssertionError(f"a ({self.shape}) sparse matrix was densified")
            return original(self, *args, **kwargs)

        return toarray

    for cls in (sp.csc_array, sp.csr_array, sp.csc_matrix, sp.csr_matrix, sp.coo_array):
        monkeypatch.setattr(cls, "toarray", trap(cls.toarray))
    with pytest.raises(AssertionError, match="densified"):  # the trap works
        sp.csc_array(X).toarray()
    prob = GroupedProblem.with_intercept(sp.csr_matrix(X), y, groups)
    lam = 0.2 * float(np.max(prob.groups.norms(prob.grad(np.zeros(prob.n_features)))))
    for depth in (2, 3):
        for method in ("prox", "gated"):
            res = solve(prob, depth, lam, method=method)
            assert res.converged and certify(prob, depth, lam, res.w).passed
        assert solve_path(prob, depth, n_lams=4).converged.all()
    reg = DGatingRegressor(depth=3, lam=0.05, groups=groups).fit(sp.csr_matrix(X), y)
    assert reg.predict(sp.csc_matrix(X)).shape == (n,)
    clf = DGatingClassifier(lam=0.01).fit(sp.csc_array(X), y > np.median(y))
    assert clf.predict_proba(sp.csr_array(X)).shape == (n, 2)
