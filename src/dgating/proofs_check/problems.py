r"""A registry of small named problems on which the correspondence of minima is verified.

Every builder is deterministic (fixed seeds) and returns a :class:`~dgating.problem.Problem`. Each
:class:`ProblemSpec` carries one :math:`\lambda` per depth, chosen so that the minimisers found are
non-trivial (some groups zero, some not), and the suites it belongs to.

Generalised linear models (:class:`~dgating.problem.GroupedProblem`):

* ``reg_tall``: squared loss, :math:`n > p`, AR(1)-correlated design, unequal group sizes, an
  unpenalised intercept (:meth:`~dgating.problem.GroupedProblem.with_intercept`);
* ``reg_wide``: squared loss, :math:`n < p`, strongly correlated equal groups;
* ``logistic``: logistic group regression with an intercept;
* ``reg_large``: a larger squared-loss problem whose gated Hessian is checked by Lanczos.

Small networks (:class:`TorchNetProblem`, float64, full batch, :math:`\tanh` hidden layer):

* ``mlp_input_synth`` / ``mlp_input_wine``: one group per input feature (its outgoing first-layer
  weights) plus one group per hidden neuron's outgoing weights; biases unpenalised;
* ``mlp_hidden_synth`` / ``mlp_hidden_digits``: one group per hidden neuron (its incoming and
  outgoing weights); biases unpenalised.

The data of ``mlp_input_wine`` and ``mlp_hidden_digits`` are scikit-learn's bundled wine and
digits sets (digits: 200 samples, 8x8 images reduced to 8 principal components, 4 classes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_choice
from ..groups import Groups
from ..problem import GroupedProblem, Problem, TorchProblem

__all__ = ["PROBLEMS", "SUITES", "ProblemSpec", "TorchNetProblem", "get_problem", "suite_problems"]

SUITES = ("quick", "full")


class TorchNetProblem(TorchProblem):
    r"""A :class:`~dgating.problem.TorchProblem` with an exact dense Hessian, cached at the last
    point, so that Hessian-vector products are matrix-vector products.

    Small networks (tens to a few hundred weights) make the dense Hessian
    :math:`\nabla^2 L_0(w)` (one vectorised ``torch.autograd.functional.hessian`` call) far cheaper
    than one autograd double-backward per :meth:`hvp`, which the gated Hessian calls once per
    column.

    Parameters
    ----------
    fn : callable
        ``fn(w: torch.Tensor of shape (n_features,)) -> torch.Tensor`` scalar, float64.
    groups : ndarray of int, shape (n_features,), or Groups
    name : str, optional
        For display.
    """

    def __init__(self, fn: Callable, groups: np.ndarray | Groups, name: str = "") -> None:
        super().__init__(fn, groups)
        self.name = name
        self._key: bytes | None = None
        self._hess: np.ndarray | None = None

    def _cached_hessian(self, w: np.ndarray) -> np.ndarray:
        w = np.ascontiguousarray(w, dtype=np.float64)
        key = w.tobytes()
        if key != self._key:
            import torch

            H = torch.autograd.functional.hessian(
                self.fn, self._tensor(w, requires_grad=False), vectorize=True
            ).numpy()
            self._hess, self._key = 0.5 * (H + H.T), key
        return self._hess

    def hessian(self, w: np.ndarray) -> np.ndarray:
        return self._cached_hessian(w).copy()

    def hvp(self, w: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self._cached_hessian(w) @ np.asarray(v, dtype=np.float64)


@dataclass(frozen=True)
class ProblemSpec:
    r"""A named problem of the verification suite.

    Attributes
    ----------
    name : str
        Registry key.
    build : callable
        ``build() -> Problem``, deterministic.
    lams : dict of int to float
        :math:`\lambda` per depth; depths not listed use ``lams[max(lams)]``.
    kind : {"glm", "network"}
    suites : tuple of str
        Suites (``"quick"``, ``"full"``) the problem belongs to.
    init_scale : float
        Standard deviation of the random starting points (multi-start and networks).
    description : str
        One line for reports.
    """

    name: str
    build: Callable[[], Problem]
    lams: dict[int, float]
    kind: str
    suites: tuple[str, ...]
    init_scale: float = 0.5
    description: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def lam(self, depth: int) -> float:
        r""":math:`\lambda` used at ``depth``."""
        return float(self.lams.get(depth, self.lams[max(self.lams)]))

    def problem(self) -> Problem:
        """The problem, built once and cached."""
        if "problem" not in self._cache:
            self._cache["problem"] = self.build()
        return self._cache["problem"]


def _ar1_design(rng: np.random.Generator, n: int, p: int, rho: float) -> np.ndarray:
    """Gaussian rows with AR(1) correlation ``rho**|i-k|`` between features."""
    cov = rho ** np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    return rng.normal(size=(n, p)) @ np.linalg.cholesky(cov).T


def _sparse_truth(rng: np.random.Generator, labels: np.ndarray, active: list[int]) -> np.ndarray:
    w = np.zeros(labels.size)
    for j in active:
        idx = labels == j
        w[idx] = rng.normal(size=int(idx.sum())) + np.sign(rng.normal(size=int(idx.sum())))
    return w


def reg_tall() -> GroupedProblem:
    """n = 80 > p = 24, AR(1) rho = 0.5, group sizes 1..6 + 1..3, unpenalised intercept."""
    rng = np.random.default_rng(101)
    sizes = [1, 2, 3, 4, 5, 6, 3]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    X = _ar1_design(rng, 80, labels.size, 0.5)
    w = _sparse_truth(rng, labels, [1, 3, 5])
    y = X @ w + 1.5 + 0.5 * rng.normal(size=80)
    return GroupedProblem.with_intercept(X, y, labels)


def reg_wide() -> GroupedProblem:
    """n = 30 < p = 60, 12 groups of 5, AR(1) rho = 0.8."""
    rng = np.random.default_rng(202)
    labels = np.repeat(np.arange(12), 5)
    X = _ar1_design(rng, 30, 60, 0.8)
    w = _sparse_truth(rng, labels, [0, 4, 9])
    y = X @ w + 0.3 * rng.normal(size=30)
    return GroupedProblem(X, y, labels)


def logistic() -> GroupedProblem:
    """Logistic regression, n = 120, p = 18 in groups of sizes 2..4, AR(1) rho = 0.3, intercept."""
    rng = np.random.default_rng(303)
    sizes = [2, 3, 4, 2, 3, 4]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    X = _ar1_design(rng, 120, labels.size, 0.3)
    w = _sparse_truth(rng, labels, [0, 2, 5])
    prob = 1.0 / (1.0 + np.exp(-(X @ w + 0.3)))
    y = np.where(rng.uniform(size=120) < prob, 1.0, -1.0)
    return GroupedProblem.with_intercept(X, y, labels, loss="logistic")


def reg_large() -> GroupedProblem:
    """n = 200, p = 400 in 80 groups of 5, AR(1) rho = 0.6 (Lanczos-sized gated Hessian)."""
    rng = np.random.default_rng(404)
    labels = np.repeat(np.arange(80), 5)
    X = _ar1_design(rng, 200, 400, 0.6)
    w = _sparse_truth(rng, labels, [3, 17, 40, 41, 66, 79])
    y = X @ w + 0.5 * rng.normal(size=200)
    return GroupedProblem(X, y, labels)


def _mlp(
    X: np.ndarray,
    target: np.ndarray,
    n_hidden: int,
    grouping: str,
    loss: str,
    name: str,
) -> TorchNetProblem:
    r"""One-hidden-layer :math:`\tanh` network as a function of its flat weights.

    ``grouping="input"``: weights laid out as ``[W1 (d, h) row-major, W2 (h, o) row-major, b1,
    b2]``; group ``i < d`` is row ``i`` of ``W1`` (input feature ``i``), group ``d + k`` is row
    ``k`` of ``W2`` (hidden neuron ``k``'s outgoing weights), biases unpenalised.
    ``grouping="hidden"``: per neuron ``k`` the block ``[W1[:, k], W2[k, :]]`` is group ``k``.
    """
    import torch

    n, d = X.shape
    o = 1 if loss == "squared" else int(target.max()) + 1
    h = n_hidden
    Xt = torch.as_tensor(X, dtype=torch.float64)
    if loss == "squared":
        yt = torch.as_tensor(target, dtype=torch.float64)
    else:
        yt = torch.as_tensor(target, dtype=torch.long)
    n_w = d * h + h * o

    if grouping == "input":
        labels = np.concatenate([np.repeat(np.arange(d), h), d + np.repeat(np.arange(h), o)])

        def weights(w):
            return w[: d * h].reshape(d, h), w[d * h : n_w].reshape(h, o)

    else:
        labels = np.repeat(np.arange(h), d + o)

        def weights(w):
            blocks = w[:n_w].reshape(h, d + o)
            return blocks[:, :d].T, blocks[:, d:]

    labels = np.concatenate([labels, -np.ones(h + o, dtype=np.int64)])

    def fn(w):
        W1, W2 = weights(w)
        b1, b2 = w[n_w : n_w + h], w[n_w + h :]
        out = torch.tanh(Xt @ W1 + b1) @ W2 + b2
        if loss == "squared":
            return 0.5 * torch.mean((out[:, 0] - yt) ** 2)
        return torch.nn.functional.cross_entropy(out, yt)

    return TorchNetProblem(fn, labels, name=name)


def mlp_input_synth() -> TorchNetProblem:
    """Regression, n = 80, 5 inputs (2 relevant), 4 tanh units, input-feature groups."""
    rng = np.random.default_rng(505)
    X = rng.normal(size=(80, 5))
    y = np.sin(1.5 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 0] + 0.1 * rng.normal(size=80)
    return _mlp(X, y, 4, "input", "squared", "mlp_input_synth")


def mlp_hidden_synth() -> TorchNetProblem:
    """Regression, n = 80, 3 inputs, 6 tanh units (a 2-unit teacher), hidden-neuron groups."""
    rng = np.random.default_rng(606)
    X = rng.normal(size=(80, 3))
    y = np.tanh(X @ [1.0, -1.0, 0.5]) - 0.8 * np.tanh(X @ [0.3, 0.8, -1.2] + 0.5)
    y = y + 0.05 * rng.normal(size=80)
    return _mlp(X, y, 6, "hidden", "squared", "mlp_hidden_synth")


def _standardise(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(axis=0)) / X.std(axis=0)


def mlp_input_wine() -> TorchNetProblem:
    """scikit-learn wine (178 x 13, 3 classes), 3 tanh units, cross-entropy, input groups."""
    from sklearn.datasets import load_wine

    data = load_wine()
    return _mlp(_standardise(data.data), data.target, 3, "input", "ce", "mlp_input_wine")


def mlp_hidden_digits() -> TorchNetProblem:
    """scikit-learn digits 0-3, 200 samples, 8 PCA features, 6 tanh units, hidden groups."""
    from sklearn.datasets import load_digits

    data = load_digits()
    keep = np.flatnonzero(data.target < 4)
    idx = np.sort(np.random.default_rng(707).choice(keep, size=200, replace=False))
    Xc = data.data[idx] - data.data[idx].mean(axis=0)
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    X = _standardise(Xc @ vt[:8].T)
    return _mlp(X, data.target[idx], 6, "hidden", "ce", "mlp_hidden_digits")


PROBLEMS: dict[str, ProblemSpec] = {
    spec.name: spec
    for spec in (
        ProblemSpec(
            "reg_tall",
            reg_tall,
            {2: 0.5, 3: 0.5, 4: 0.5},
            "glm",
            ("quick", "full"),
            description="squared, n>p, correlated, unequal groups, intercept",
        ),
        ProblemSpec(
            "reg_wide",
            reg_wide,
            {2: 0.5, 3: 0.5, 4: 0.5},
            "glm",
            ("quick", "full"),
            description="squared, n<p, correlated (rho=0.8)",
        ),
        ProblemSpec(
            "logistic",
            logistic,
            {2: 0.05, 3: 0.05, 4: 0.05},
            "glm",
            ("quick", "full"),
            description="logistic, intercept",
        ),
        ProblemSpec(
            "reg_large",
            reg_large,
            {2: 0.3, 3: 0.3, 4: 0.3},
            "glm",
            ("full",),
            description="squared, p=400 (Lanczos)",
        ),
        ProblemSpec(
            "mlp_input_synth",
            mlp_input_synth,
            {2: 0.02, 3: 0.02, 4: 0.02},
            "network",
            ("quick", "full"),
            description="tanh MLP, input-feature groups, synthetic",
        ),
        ProblemSpec(
            "mlp_hidden_synth",
            mlp_hidden_synth,
            {2: 0.02, 3: 0.02, 4: 0.02},
            "network",
            ("full",),
            description="tanh MLP, hidden-neuron groups, synthetic",
        ),
        ProblemSpec(
            "mlp_input_wine",
            mlp_input_wine,
            {2: 0.05, 3: 0.05, 4: 0.05},
            "network",
            ("full",),
            description="tanh MLP, input-feature groups, wine",
        ),
        ProblemSpec(
            "mlp_hidden_digits",
            mlp_hidden_digits,
            {2: 0.05, 3: 0.05, 4: 0.05},
            "network",
            ("full",),
            description="tanh MLP, hidden-neuron groups, digits",
        ),
    )
}


def get_problem(name: str) -> ProblemSpec:
    """The :class:`ProblemSpec` registered as ``name`` (the error lists the valid names)."""
    return PROBLEMS[check_choice(name, "problem", PROBLEMS)]


def suite_problems(suite: str) -> list[ProblemSpec]:
    """The problems of ``suite`` (``"quick"`` or ``"full"``), in registry order."""
    check_choice(suite, "suite", SUITES)
    return [spec for spec in PROBLEMS.values() if suite in spec.suites]
