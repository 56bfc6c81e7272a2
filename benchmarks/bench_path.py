r"""Benchmark of issue 11: regularisation paths on a sparse design.

Problem: :math:`n = p = 2000`, 200 groups of 10, a sparse Gaussian design with 1% non-zeros
(``scipy.sparse.random``), 10 true groups, noise 0.1, no intercept. Grid: the default grid of
``dgating.solve_path`` (``K = 20`` points from ``lam_max`` down to ``lam_min_ratio = 0.05``).

Rows, for each depth ``D``:

* ``path, sparse X``: ``solve_path`` on the ``csc_array`` (warm starts);
* ``path, dense X``: the same on ``X.toarray()`` (the one-off spectral norm of dense ``X``, an
  SVD, is computed before timing; it is cached by the problem);
* ``K cold solves, sparse X``: ``solve`` at every grid point from its default ridge start;
* ``skglm GroupLasso path`` (``D = 2`` only, if skglm is installed): ``warm_start=True`` along
  the same grid on the sparse ``X``, ``tol=1e-10``, after one untimed fit (numba compilation).

Every row reports the worst relative stationarity over the path in dgating's measure
(``PenalisedObjective.stationarity``); ratios are seconds / fastest row of the same depth. One
timed run per row (the path is long enough to time), each on a freshly built problem, after an
untimed run on a small slice that compiles the numba kernels; BLAS on one thread.

Usage::

    python benchmarks/bench_path.py
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from dgating import GroupedProblem, PenalisedObjective, solve, solve_path  # noqa: E402

N, P, GROUP_SIZE, DENSITY, K, RATIO = 2000, 2000, 10, 0.01, 20, 0.05


def make_problem(seed: int = 0) -> tuple[sp.csc_array, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = sp.csc_array(
        sp.random(N, P, density=DENSITY, random_state=seed, data_rvs=rng.standard_normal)
    )
    w = np.zeros(P)
    w[: 10 * GROUP_SIZE] = rng.normal(size=10 * GROUP_SIZE)
    return X, X @ w + 0.1 * rng.normal(size=N), np.arange(P) // GROUP_SIZE


def worst_stationarity(problem, depth, lams, coefs) -> float:
    return max(
        PenalisedObjective(problem, depth, lam).stationarity(w) for lam, w in zip(lams, coefs)
    )


def skglm_path(X, y, lams) -> np.ndarray | None:
    try:
        from skglm import GroupLasso
    except ImportError:
        return None
    # One untimed fit on a slice of the same sparse type compiles skglm's numba kernels.
    GroupLasso(groups=GROUP_SIZE, alpha=lams[0], fit_intercept=False).fit(X[:50], y[:50])
    model = GroupLasso(
        groups=GROUP_SIZE, alpha=lams[0], fit_intercept=False, tol=1e-10, warm_start=True
    )
    coefs = []
    for lam in lams:
        coefs.append(model.set_params(alpha=lam).fit(X, y).coef_.copy())
    return np.array(coefs)


def warm_up() -> None:
    """Compile (or load) the numba kernels for dense and sparse X and both depths, untimed."""
    X, y, groups = make_problem()
    X, y, groups = X[:50, :40], y[:50], groups[:40]
    for design in (X, X.toarray()):
        for depth in (2, 3):
            solve_path(GroupedProblem(design, y, groups), depth, n_lams=3)


def main() -> None:
    X, y, groups = make_problem()
    warm_up()
    print(f"n = {N}, p = {P}, {P // GROUP_SIZE} groups, density {DENSITY}, K = {K} lams")
    for depth in (2, 3):
        # Each row gets a fresh problem: nothing cached by one row (block constants) helps another.
        sparse = GroupedProblem(X, y, groups)
        dense = GroupedProblem(X.toarray(), y, groups)
        dense.lipschitz()  # one-off SVD, cached
        rows: dict[str, tuple[float, float]] = {}
        start = time.perf_counter()
        path = solve_path(sparse, depth, n_lams=K, lam_min_ratio=RATIO)
        rows["path, sparse X"] = (time.perf_counter() - start, path.stationarity.max())
        lams = path.lams
        start = time.perf_counter()
        pd = solve_path(dense, depth, n_lams=K, lam_min_ratio=RATIO)
        rows["path, dense X"] = (time.perf_counter() - start, pd.stationarity.max())
        sparse = GroupedProblem(X, y, groups)
        start = time.perf_counter()
        cold = [solve(sparse, depth, lam).w for lam in lams]
        rows["K cold solves, sparse X"] = (
            time.perf_counter() - start,
            worst_stationarity(sparse, depth, lams, cold),
        )
        if depth == 2:
            start = time.perf_counter()
            coefs = skglm_path(X, y, lams)
            if coefs is not None:
                rows["skglm GroupLasso path"] = (
                    time.perf_counter() - start,
                    worst_stationarity(sparse, 2, lams, coefs),
                )
        best = min(t for t, _ in rows.values())
        print(f"\nD = {depth}: supports {path.supports.sum(axis=1).tolist()}")
        print(f"  {'row':26s} {'seconds':>9s} {'ratio':>7s} {'max stationarity':>17s}")
        for name, (t, stat) in rows.items():
            print(f"  {name:26s} {t:9.3f} {t / best:7.2f} {stat:17.2e}")


if __name__ == "__main__":
    main()
