"""Both routes against each other and against an independent convex solver (cvxpy, D = 2)."""

from __future__ import annotations

import numpy as np
import pytest

from dgating import DGating, TorchProblem, certify, solve_gated, solve_prox

from .helpers import random_problem

SHAPES = [(60, 20), (30, 40), (80, 32)]  # n > p and n < p


def cvxpy_group_lasso(problem, lam: float) -> np.ndarray:
    """Group lasso by cvxpy (Clarabel), then the KKT equations on cvxpy's support solved by scipy.

    Interior-point solutions are only accurate to ~1e-5 relative in w here, too coarse for the
    1e-6 comparison; cvxpy decides the support (the combinatorial part) and an independent
    root-find of g_S + lam w_j / ||w_j|| = 0 (scipy ``root``, no dgating code) polishes it.
    """
    cp = pytest.importorskip("cvxpy")
    from scipy.optimize import root

    X, y, labels = problem.X, problem.y, problem.groups.labels
    n, J = X.shape[0], problem.n_groups
    w = cp.Variable(problem.n_features)
    pen = sum(cp.norm(w[np.flatnonzero(labels == j)], 2) for j in range(J))
    cp.Problem(cp.Minimize(cp.sum_squares(y - X @ w) / (2 * n) + lam * pen)).solve(cp.CLARABEL)
    w_cvx = np.asarray(w.value)
    norms = np.array([np.linalg.norm(w_cvx[labels == j]) for j in range(J)])
    active = np.flatnonzero(norms > 1e-4 * norms.max())
    idx = np.flatnonzero(np.isin(labels, active))

    def kkt(x: np.ndarray) -> np.ndarray:
        full = np.zeros(problem.n_features)
        full[idx] = x
        g = X.T @ (X @ full - y) / n
        out = g[idx].copy()
        for j in active:
            m = labels[idx] == j
            out[m] += lam * x[m] / np.linalg.norm(x[m])
        return out

    sol = root(kkt, w_cvx[idx], method="hybr", options={"xtol": 1e-14})
    assert np.linalg.norm(kkt(sol.x)) <= 1e-13 * lam, sol.message
    w_ref = np.zeros(problem.n_features)
    w_ref[idx] = sol.x
    assert np.linalg.norm(w_ref - w_cvx) <= 1e-3 * np.linalg.norm(w_ref)  # same solution
    # The zero groups satisfy the group-lasso condition ||g_j|| <= lam at the reference.
    g = X.T @ (X @ w_ref - y) / n
    assert all(np.linalg.norm(g[labels == j]) <= lam for j in set(range(J)) - set(active))
    return w_ref


@pytest.mark.parametrize("shape", SHAPES)
def test_group_lasso_routes_agree_with_cvxpy(rng, shape):
    n, p = shape
    prob = random_problem(rng, n=n, p=p, n_active=2)
    lam = 0.3 * float(np.max(prob.groups.norms(prob.grad(np.zeros(p)))))
    w_cvx = cvxpy_group_lasso(prob, lam)
    w_prox = solve_prox(prob, 2, lam).w
    w_gated = solve_gated(prob, 2, lam).w
    scale = np.linalg.norm(w_cvx)
    assert np.linalg.norm(w_prox - w_cvx) <= 1e-6 * scale
    assert np.linalg.norm(w_gated - w_cvx) <= 1e-6 * scale
    assert np.linalg.norm(w_gated - w_prox) <= 1e-6 * scale
    assert 0 < len(np.flatnonzero(prob.groups.norms(w_prox))) < prob.n_groups


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_non_convex_routes_reach_tight_stationarity(rng, depth, shape, loss):
    n, p = shape
    prob = random_problem(rng, n=n, p=p, loss=loss, intercept=loss == "logistic")
    lam = 0.1 * float(np.max(prob.groups.norms(prob.grad(np.zeros(prob.n_features)))))
    prox = solve_prox(prob, depth, lam)
    gated = solve_gated(prob, depth, lam)
    assert prox.converged and prox.stationarity <= 1e-8
    assert gated.converged and gated.stationarity <= 1e-8
    assert gated.max_imbalance <= 1e-8
    assert DGating(depth, prob.groups).relative_imbalance(gated.params) == gated.max_imbalance
    for res in (prox, gated):
        assert certify(prob, depth, lam, res.w).passed
        assert res.objective == pytest.approx(
            prob.value(res.w) + lam * np.sum(prob.groups.norms(res.w) ** (2 / depth)), rel=1e-14
        )


@pytest.mark.parametrize("depth", [2, 3])
def test_prox_objective_is_monotone_from_a_dense_start(rng, depth):
    # The monotone acceleration never increases L_w: check on a run truncated at each length.
    prob = random_problem(rng, n=30, p=40)
    lam = 0.05
    values = [
        solve_prox(prob, depth, lam, max_iter=k, polish=False, algorithm="fista").objective
        for k in range(1, 25)
    ]
    assert np.all(np.diff(values) <= 1e-12 * abs(values[0]))


def test_torch_problem_matches_grouped_problem(rng):
    prob = random_problem(rng, n=30, p=12, group_size=3)
    import torch

    X, y = torch.tensor(prob.X), torch.tensor(prob.y)
    tprob = TorchProblem(lambda w: ((y - X @ w) ** 2).sum() / (2 * len(y)), prob.groups)
    a, b = solve_gated(prob, 3, 0.05), solve_gated(tprob, 3, 0.05)
    np.testing.assert_allclose(a.w, b.w, rtol=1e-8, atol=1e-10)
    v = rng.normal(size=12)
    np.testing.assert_allclose(tprob.hvp(a.w, v), prob.hvp(a.w, v), rtol=1e-12)


def test_gradient_descent_route(rng):
    prob = random_problem(rng, n=40, p=8, group_size=2)
    res_gd = solve_gated(prob, 3, 0.05, method="gd", max_iter=200_000)
    res_lb = solve_gated(prob, 3, 0.05)
    assert res_gd.converged
    np.testing.assert_allclose(res_gd.w, res_lb.w, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("intercept", [False, True])
def test_large_lam_zeroes_every_group(rng, depth, intercept):
    # D = 2 above lam_max = max_j ||grad_j L0(w_free)||: the solution has no active group.
    prob = random_problem(rng, n=30, p=12, group_size=3, intercept=intercept)
    lam = 10.0 * float(np.max(prob.groups.norms(prob.grad(np.zeros(prob.n_features)))))
    for res in (solve_prox(prob, depth, lam), solve_gated(prob, depth, lam)):
        assert res.converged and res.support(prob.groups) == []
        free = ~prob.groups.penalised
        assert np.all(res.w[prob.groups.penalised] == 0.0)
        if intercept:  # the unpenalised intercept solves its own first-order condition
            assert abs(prob.grad(res.w)[free]).max() <= 1e-8 * (1 + abs(prob.y).max())


# --- the BCD engine (dgating._bcd) against the proximal-gradient route and itself -------------


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("shape", SHAPES)
def test_bcd_matches_fista_group_lasso(rng, loss, shape):
    # Convex (D = 2): both algorithms must find the same minimiser, with an intercept.
    n, p = shape
    prob = random_problem(rng, n=n, p=p, loss=loss, intercept=True)
    lam = 0.2 * float(np.max(prob.groups.norms(prob.grad(np.zeros(prob.n_features)))))
    bcd = solve_prox(prob, 2, lam, algorithm="bcd")
    fista = solve_prox(prob, 2, lam, algorithm="fista")
    assert bcd.converged and bcd.stationarity <= 1e-8 and bcd.message.startswith("bcd")
    assert fista.converged and not fista.message.startswith("bcd")
    # Strong convexity on the support: ||w - w*|| <~ stationarity * scale / curvature; the
    # 1e-6 relative bound leaves room for the conditioning of these correlated designs.
    np.testing.assert_allclose(bcd.w, fista.w, rtol=0, atol=1e-6 * np.linalg.norm(fista.w))
    assert abs(bcd.objective - fista.objective) <= 1e-9 * abs(fista.objective)
    assert certify(prob, 2, lam, bcd.w).passed


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_bcd_non_convex_is_certified_and_descends(rng, depth, loss):
    # q < 1: a stationary point (not necessarily FISTA's); it must pass the certificate and
    # not be worse than its start, the shared ridge point.
    prob = random_problem(rng, n=50, p=24, loss=loss, intercept=True)
    lam = 0.1 * float(np.max(prob.groups.norms(prob.grad(np.zeros(prob.n_features)))))
    res = solve_prox(prob, depth, lam, algorithm="bcd")
    assert res.converged and res.message.startswith("bcd")
    cert = certify(prob, depth, lam, res.w)
    assert cert.passed, cert
    start = solve_prox(prob, depth, lam, algorithm="bcd", max_iter=1).objective
    assert res.objective <= start
    # Negative control: the same certificate rejects a perturbed point.
    w_bad = res.w + 1e-3 * (res.w != 0)
    assert not certify(prob, depth, lam, w_bad).passed


@pytest.mark.parametrize(("halvings", "frac"), [(30, 0.01), (0, 0.2)])
def test_logistic_newton_matches_fista(rng, halvings, frac, monkeypatch):
    # Small lam, nearly separable labels: the regime where proximal Newton replaces plain BCD.
    # With no line-search halvings allowed, every Newton step that does not decrease L_w at t = 1
    # falls back to plain BCD epochs (slow at small lam, hence the larger one): the same minimiser.
    import dgating._bcd as bcd

    monkeypatch.setattr(bcd, "_MAX_HALVINGS", halvings)
    prob = random_problem(rng, n=60, p=20, loss="logistic", intercept=True)
    lam = frac * float(np.max(prob.groups.norms(prob.grad(np.zeros(prob.n_features)))))
    res = solve_prox(prob, 2, lam, algorithm="bcd")
    ref = solve_prox(prob, 2, lam, algorithm="fista")
    assert res.converged and res.message.startswith("bcd") and ref.converged
    assert abs(res.objective - ref.objective) <= 1e-9 * abs(ref.objective)
    np.testing.assert_allclose(res.w, ref.w, rtol=0, atol=1e-5 * np.linalg.norm(ref.w))
    assert certify(prob, 2, lam, res.w).passed


@pytest.mark.parametrize("sparse", [False, True])
def test_weighted_block_constants_against_numpy(rng, sparse):
    # The kernel's lambda_max(X_b^T diag(W) X_b) against numpy's eigvalsh of the explicit product,
    # dense and CSC; then the bound Newton uses between recomputations: scaling W by at most c
    # scales every constant by at most c.
    import scipy.sparse as sps

    from dgating._bcd import _lipschitz

    n, sizes = 30, [3, 1, 4]
    X = rng.normal(size=(n, sum(sizes)))
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    W = rng.uniform(0.1, 1.0, n)
    if sparse:
        X[rng.random(X.shape) < 0.5] = 0.0
        csc = sps.csc_matrix(X)
        mat = (np.zeros((1, 1), order="F"), csc.data, csc.indices.astype(np.int64),
               csc.indptr.astype(np.int64), True)  # fmt: skip
    else:
        mat = (
            np.asfortranarray(X),
            np.zeros(1),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            False,
        )
    out = np.empty(len(sizes))
    _lipschitz(*mat, ptr, np.arange(len(sizes)), W, out)
    for b in range(len(sizes)):
        Xb = X[:, ptr[b] : ptr[b + 1]]
        ref = np.linalg.eigvalsh(Xb.T @ (W[:, None] * Xb))[-1]
        assert abs(out[b] - ref) <= 1e-12 * ref
    W2 = W * rng.uniform(0.5, 2.0, n)
    out2 = np.empty(len(sizes))
    _lipschitz(*mat, ptr, np.arange(len(sizes)), W2, out2)
    assert np.all(out2 <= np.max(W2 / W) * out * (1 + 1e-12))
    # Negative control: the constants of W are not a bound for the heavier W2.
    assert np.any(out2 > out)


def test_working_sets_copy_only_their_columns(rng, monkeypatch):
    # Near lam_max the working sets stay small: no set may hold all of X's columns (the whole
    # design is never copied), and the solution is still certified.
    import dgating._bcd as bcd

    prob = random_problem(rng, n=60, p=400, group_size=4)
    lam = 0.5 * float(np.max(prob.groups.norms(prob.grad(np.zeros(prob.n_features)))))
    widths = []
    original = bcd._WorkingSet.__init__

    def record(self, design, problem, blocks):
        original(self, design, problem, blocks)
        widths.append(self.X.shape[1])

    monkeypatch.setattr(bcd._WorkingSet, "__init__", record)
    res = solve_prox(prob, 2, lam, algorithm="bcd")
    assert res.converged and certify(prob, 2, lam, res.w).passed
    assert widths and max(widths) < prob.n_features // 4
    # Negative control: from a dense start the first set is every group, every column.
    widths.clear()
    solve_prox(prob, 2, lam, algorithm="bcd", w0=np.ones(prob.n_features))
    assert widths[0] == prob.n_features


def test_bcd_warm_start_at_the_solution_does_no_epoch(rng):
    prob = random_problem(rng, n=40, p=20)
    res = solve_prox(prob, 2, 0.05)
    again = solve_prox(prob, 2, 0.05, w0=res.w)
    assert again.iterations == 0 and np.array_equal(again.w, res.w)
    # Negative control: a cold start needs epochs.
    assert res.iterations > 0


def test_bcd_on_sparse_design_matches_dense(rng):
    sparse = pytest.importorskip("scipy.sparse")
    prob = random_problem(rng, n=60, p=30, group_size=3, intercept=True)
    X = prob.X.copy()
    X[rng.random(X.shape) < 0.6] = 0.0  # a genuinely sparse design (intercept column stays)
    X[:, -1] = 1.0
    dense = type(prob)(X, prob.y, prob.groups)
    lam = 0.1 * float(np.max(dense.groups.norms(dense.grad(np.zeros(dense.n_features)))))
    ref = solve_prox(dense, 2, lam, algorithm="bcd")
    # GroupedProblem may reject sparse X on this branch: swap in the CSC matrix after
    # construction so that the sparse kernels are exercised either way.
    sp_prob = type(prob)(X, prob.y, prob.groups)
    object.__setattr__(sp_prob, "X", sparse.csc_matrix(X))
    res = solve_prox(sp_prob, 2, lam, algorithm="bcd")
    assert res.converged and ref.converged
    np.testing.assert_allclose(res.w, ref.w, rtol=0, atol=1e-6 * np.linalg.norm(ref.w))


def test_solvers_stop_on_overflowing_data(rng):
    # X * 1e300 overflows every product: each route must stop (not loop) and not converge.
    prob = random_problem(rng, n=20, p=8, group_size=2)
    huge = type(prob)(prob.X * 1e300, prob.y, prob.groups)
    with np.errstate(all="ignore"):
        for res in (
            solve_prox(huge, 2, 0.1, algorithm="bcd"),
            solve_prox(huge, 2, 0.1, algorithm="fista"),
            solve_gated(huge, 2, 0.1),
        ):
            assert not res.converged


def test_gated_prox_start_agrees_with_lift_start(rng):
    prob = random_problem(rng, n=40, p=16)
    lam = 0.05
    a = solve_gated(prob, 3, lam)
    b = solve_gated(prob, 3, lam, start="lift")
    assert a.converged and b.converged and a.message.startswith("prox start")
    np.testing.assert_allclose(a.w, b.w, rtol=1e-7, atol=1e-9)
    assert a.max_imbalance <= 1e-8


def test_bcd_rejects_a_torch_problem(rng):
    from dgating._validation import InvalidParameterError

    tprob = TorchProblem(lambda w: (w**2).sum(), np.array([0, 0, 1]))
    with pytest.raises(InvalidParameterError, match="algorithm"):
        solve_prox(tprob, 2, 0.1, algorithm="bcd")
