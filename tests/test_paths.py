"""Regularisation paths: lam_max from its definition, path points against independent solves."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from dgating import certify, solve, solve_path
from dgating._validation import InvalidParameterError
from dgating.paths import lam_grid, lam_max

from .helpers import random_problem


def _closed_form_g0(prob) -> np.ndarray:
    """The gradient at the unpenalised fit (intercept column last), without dgating: for the
    squared loss b = mean(y) and g = X^T (b 1 - y) / n; for the logistic loss b = logit(p),
    p the fraction of +1 labels, and g = -X^T (y sigma(-y b)) / n."""
    X, y = prob.X, prob.y
    if prob.loss.name == "squared":
        return X.T @ (np.full_like(y, y.mean()) - y) / y.size
    frac = np.mean(y > 0)
    b = np.log(frac / (1 - frac))
    return -X.T @ (y / (1 + np.exp(y * b))) / y.size


def _group_norms(v: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([np.linalg.norm(v[labels == j]) for j in range(labels.max() + 1)])


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_lam_max_group_lasso_is_the_kkt_threshold(rng, loss):
    prob = random_problem(rng, n=50, p=12, group_size=3, loss=loss, intercept=True)
    labels = prob.groups.labels
    expected = _group_norms(_closed_form_g0(prob), labels).max()
    top = lam_max(prob, 2)
    assert top == pytest.approx(expected, rel=1e-9)
    # Negative control: the gradient at w = 0 (intercept not fitted first) gives another value.
    wrong = _group_norms(prob.grad(np.zeros(prob.n_features)), labels).max()
    assert abs(wrong - top) > 1e-3 * top
    # Just above: the global solution is zero on every group; just below: it is not.
    above = solve(prob, 2, top * (1 + 1e-6))
    below = solve(prob, 2, top * (1 - 1e-3))
    assert above.converged and not np.any(prob.groups.norms(above.w))
    assert below.converged and np.count_nonzero(prob.groups.norms(below.w)) >= 1


def _prox_keeps_zero(s: float, t_lam: float, q: float) -> bool:
    """Brute-force scalar prox: does r = 0 minimise (1/2)(r - s)^2 + t_lam r^q over r >= 0?"""
    h = lambda r: 0.5 * (r - s) ** 2 + t_lam * r**q  # noqa: E731
    best = minimize_scalar(h, bounds=(1e-12 * s, s), method="bounded", options={"xatol": 1e-13})
    grid = np.linspace(1e-9 * s, s, 20001)
    return min(best.fun, h(grid).min()) >= h(0.0)


@pytest.mark.parametrize("depth", [3, 4])
def test_lam_max_non_convex_is_the_prox_threshold(rng, depth):
    prob = random_problem(rng, n=50, p=12, group_size=3, intercept=True)
    q, labels = 2.0 / depth, prob.groups.labels
    s_over_t = _group_norms(_closed_form_g0(prob), labels)  # ||g_j||
    t = prob.n_samples / np.linalg.norm(prob.X, 2) ** 2  # 1 / Lipschitz constant, by SVD
    top = lam_max(prob, depth)
    # Just above lam_max every group stays at zero after the prox-gradient step from w^0;
    # just below, the group with the largest gradient leaves zero.
    assert all(_prox_keeps_zero(t * s, t * top * (1 + 1e-5), q) for s in s_over_t)
    assert not _prox_keeps_zero(t * s_over_t.max(), t * top * (1 - 1e-5), q)
    # The path reproduces this: zero at lam_max, non-zero just below.
    path = solve_path(prob, depth, [top, top * (1 - 1e-3)])
    assert not path.supports[0].any() and path.supports[1].any()
    assert path.converged.all()
    # Negative control: zero is a local minimum for every lam when q < 1, so a solver started
    # at w^0 stays there below lam_max; the path's warm-start step is what lets a group enter.
    w0 = path.coefs[0]
    cold = solve(prob, depth, top * (1 - 1e-3), w0=w0)
    assert not np.any(prob.groups.norms(cold.w))


def test_default_grid(rng):
    prob = random_problem(rng, n=40, p=8, group_size=2)
    path = solve_path(prob, 2, n_lams=7, lam_min_ratio=1e-2)
    assert path.lams.shape == (7,) and path.coefs.shape == (7, 8)
    assert path.supports.shape == (7, 4) and path.supports.dtype == bool
    assert path.lams[0] == pytest.approx(lam_max(prob, 2), rel=1e-15)
    np.testing.assert_allclose(path.lams[1:] / path.lams[:-1], 1e-2 ** (1 / 6), rtol=1e-12)
    assert path.lams[-1] == pytest.approx(1e-2 * path.lams[0], rel=1e-12)
    assert not path.supports[0].any() and path.supports[-1].any()
    np.testing.assert_array_equal(path.supports, prob.groups.norms(path.coefs) > 0)
    # A given grid is solved in decreasing order.
    given = solve_path(prob, 2, [0.01, 0.1, 0.05])
    assert given.lams.tolist() == [0.1, 0.05, 0.01] and np.isnan(given.lam_max)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lams": [0.1, -1.0]}, "lams"),
        ({"lams": []}, "lams"),
        ({"lams": [[0.1]]}, "lams"),
        ({"lam_min_ratio": 1.0}, "lam_min_ratio"),
        ({"n_lams": 0}, "n_lams"),
        ({"tol": 0.0}, "tol"),
    ],
)
def test_invalid_arguments(rng, kwargs, match):
    prob = random_problem(rng, n=20, p=4, group_size=2)
    with pytest.raises(InvalidParameterError, match=match):
        solve_path(prob, 2, **kwargs)
    with pytest.raises(InvalidParameterError, match="lam_max"):
        lam_grid(0.0)


@pytest.mark.parametrize("method", ["prox", "gated"])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_group_lasso_path_equals_independent_solves(rng, method, loss):
    prob = random_problem(rng, n=60, p=16, loss=loss, intercept=True)
    path = solve_path(prob, 2, n_lams=8, lam_min_ratio=1e-2, method=method)
    assert path.converged.all() and (path.stationarity <= 1e-8).all()
    assert not path.supports[0].any() and path.supports[-1].any()  # starts at zero
    for k, lam in enumerate(path.lams):
        cold = solve(prob, 2, lam, method=method)  # cold start: the ridge initial point
        scale = max(1.0, np.linalg.norm(cold.w))
        # Both are 1e-8-stationary points of a strongly convex problem on the support: the
        # distance is a small multiple of the tolerance (curvature ~ 1e-2 for the logistic loss).
        assert np.linalg.norm(path.coefs[k] - cold.w) <= 1e-5 * scale
        assert path.objectives[k] == pytest.approx(cold.objective, rel=1e-10)
        # At lams[0] = lam_max the zero condition ||g_j|| <= lam holds with equality, and the
        # gated route leaves such a group at a norm of order tol: compare supports above that.
        big = prob.groups.norms(cold.w) > 1e-6 * scale
        np.testing.assert_array_equal(path.supports[k], big)
    # Negative control: a neighbouring grid point is far outside that tolerance.
    assert np.linalg.norm(path.coefs[3] - path.coefs[4]) > 1e-3


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_non_convex_path_follows_certified_local_minima(rng, depth, loss):
    prob = random_problem(rng, n=60, p=16, loss=loss, intercept=True)
    path = solve_path(prob, depth, n_lams=8, lam_min_ratio=1e-2)
    assert path.converged.all()
    assert not path.supports[0].any() and path.supports[-1].any()  # starts at zero
    for k, lam in enumerate(path.lams):
        assert certify(prob, depth, lam, path.coefs[k]).passed
        # A fixed point: the solver started at the path point does not move.
        again = solve(prob, depth, lam, w0=path.coefs[k])
        assert np.linalg.norm(again.w - path.coefs[k]) <= 1e-7 * max(1, np.linalg.norm(again.w))
        cold = solve(prob, depth, lam)
        # Where the cold solve lands in the same basin it is the same minimum. (How often it
        # does depends on the solver's default start: for q < 1 different starts may reach
        # different local minima, so the count is not asserted; the certificate and the fixed
        # point above are what a path point must satisfy.)
        if np.array_equal(prob.groups.norms(cold.w) > 0, path.supports[k]):
            assert np.linalg.norm(cold.w - path.coefs[k]) <= 1e-6 * np.linalg.norm(cold.w)
    # Negative control: the certificate rejects a path point at the wrong lam.
    assert not certify(prob, depth, 1.5 * path.lams[4], path.coefs[4]).passed


def test_path_on_a_torch_problem_equals_the_glm_path(rng):
    # A generic Problem (autograd, no Lipschitz bound: the step comes from power iteration)
    # gives the same group-lasso path as the analytic GroupedProblem.
    torch = pytest.importorskip("torch")
    from dgating import TorchProblem

    prob = random_problem(rng, n=40, p=8, group_size=2, intercept=True)
    X, y = torch.as_tensor(prob.X), torch.as_tensor(prob.y)
    generic = TorchProblem(lambda w: 0.5 * ((y - X @ w) ** 2).mean(), prob.groups)
    lams = lam_max(prob, 2) * np.array([1.0, 0.3, 0.05])
    ref = solve_path(prob, 2, lams)
    path = solve_path(generic, 2, lams)
    assert path.converged.all()
    np.testing.assert_array_equal(path.supports, ref.supports)
    assert np.abs(path.coefs - ref.coefs).max() <= 1e-6 * np.abs(ref.coefs).max()
