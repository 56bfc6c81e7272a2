"""Small random problems shared by the core tests."""

from __future__ import annotations

import numpy as np

from dgating import GroupedProblem


def random_problem(
    rng: np.random.Generator,
    n: int = 40,
    p: int = 16,
    group_size: int = 4,
    *,
    loss: str = "squared",
    rho: float = 0.5,
    n_active: int = 2,
    intercept: bool = False,
) -> GroupedProblem:
    """Correlated Gaussian design (Toeplitz rho^|i-j|), ``n_active`` true groups, noise 0.1."""
    cov = rho ** np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    X = rng.normal(size=(n, p)) @ np.linalg.cholesky(cov).T
    w = np.zeros(p)
    w[: n_active * group_size] = rng.normal(scale=2.0, size=n_active * group_size)
    z = X @ w + 0.1 * rng.normal(size=n)
    y = np.where(z >= 0, 1.0, -1.0) if loss == "logistic" else z
    groups = np.arange(p) // group_size
    if intercept:
        return GroupedProblem.with_intercept(
            X, y + (0 if loss == "logistic" else 1.0), groups, loss
        )
    return GroupedProblem(X, y, groups, loss)
