"""Analytic gradients and Hessian-vector products of L and L_w against torch autograd and
finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgating import DGating, GatedObjective, GatedParams, PenalisedObjective

from .helpers import random_problem


def torch_loss(problem, w: torch.Tensor) -> torch.Tensor:
    """Independent torch implementation of L0 from docs/theory.md [C-conventions]."""
    X, y = torch.tensor(problem.X), torch.tensor(problem.y)
    z = X @ w
    if problem.loss.name == "squared":
        return ((y - z) ** 2).sum() / (2 * len(y))
    return torch.nn.functional.softplus(-y * z).mean()


def torch_gated(problem, depth, lam, z: torch.Tensor) -> torch.Tensor:
    labels = problem.groups.labels
    p, J = problem.n_features, problem.n_groups
    omega, gates = z[:p], z[p:].reshape(J, depth - 1)
    prod = torch.cat([gates.prod(dim=1), torch.ones(1)])
    w = omega * prod[torch.tensor(labels)]
    pen = (omega[torch.as_tensor(labels >= 0)] ** 2).sum() + (gates**2).sum()
    return torch_loss(problem, w) + lam / depth * pen


CASES = [(loss, depth) for loss in ("squared", "logistic") for depth in (2, 3, 4, 5)]


@pytest.mark.parametrize("loss,depth", CASES)
def test_gated_gradient_matches_autograd_and_finite_differences(rng, loss, depth):
    prob = random_problem(rng, loss=loss, intercept=True)
    obj = GatedObjective(prob, depth, lam=0.3)
    gating = obj.gating
    params = GatedParams(
        rng.normal(size=prob.n_features), rng.normal(size=(prob.n_groups, depth - 1))
    )
    z = gating.pack(params)
    zt = torch.tensor(z, requires_grad=True)
    val_t = torch_gated(prob, depth, 0.3, zt)
    val_t.backward()
    val, grad = obj.fun_and_jac(z)
    assert abs(val - val_t.item()) <= 1e-12 * abs(val)
    ref = zt.grad.numpy()
    assert np.linalg.norm(grad - ref) <= 1e-12 * np.linalg.norm(ref)
    # Central differences: error O(h^2) ~ 1e-10 at h = 1e-5; 1e-6 relative leaves headroom.
    h = 1e-5
    fd = np.array(
        [
            (obj.fun_and_jac(z + h * e)[0] - obj.fun_and_jac(z - h * e)[0]) / (2 * h)
            for e in np.eye(z.size)
        ]
    )
    assert np.linalg.norm(grad - fd) <= 1e-6 * np.linalg.norm(fd)


@pytest.mark.parametrize("loss,depth", CASES)
def test_gated_hvp_matches_autograd(rng, loss, depth):
    prob = random_problem(rng, loss=loss)
    obj = GatedObjective(prob, depth, lam=0.2)
    z = rng.normal(size=obj.gating.n_params)
    v = rng.normal(size=z.size)
    _, hv = torch.autograd.functional.hvp(
        lambda t: torch_gated(prob, depth, 0.2, t), torch.tensor(z), torch.tensor(v)
    )
    ours = obj.gating.pack(obj.hvp(obj.gating.unpack(z), obj.gating.unpack(v)))
    assert np.linalg.norm(ours - hv.numpy()) <= 1e-12 * np.linalg.norm(hv.numpy())
    H = obj.hessian(obj.gating.unpack(z))
    np.testing.assert_allclose(H, H.T)
    assert np.linalg.norm(H @ v - hv.numpy()) <= 1e-12 * np.linalg.norm(hv.numpy())


@pytest.mark.parametrize("loss,depth", CASES)
def test_penalised_gradient_on_support_matches_autograd(rng, loss, depth):
    prob = random_problem(rng, loss=loss, intercept=True)
    obj = PenalisedObjective(prob, depth, lam=0.3)
    w = rng.normal(size=prob.n_features)
    w[prob.groups.labels == 1] = 0.0  # a zero group: outside the support
    wt = torch.tensor(w, requires_grad=True)
    labels = prob.groups.labels
    norms = torch.stack([wt[torch.as_tensor(labels == j)].norm() for j in (0, 2, 3)])
    val_t = torch_loss(prob, wt) + 0.3 * (norms ** (2.0 / depth)).sum()
    val_t.backward()
    assert abs(obj.value(w) - val_t.item()) <= 1e-12 * abs(obj.value(w))
    support = obj.support_mask(w)
    ours, ref = obj.grad_on_support(w), wt.grad.numpy()
    assert np.linalg.norm(ours[support] - ref[support]) <= 1e-12 * np.linalg.norm(ref[support])
    np.testing.assert_array_equal(ours[~support], 0.0)
    # Reduced Hessian against autograd on the support.
    idx = np.flatnonzero(support)
    H, hidx = obj.reduced_hessian(w)
    np.testing.assert_array_equal(idx, hidx)

    def f_support(x):
        full = torch.tensor(w).clone()
        full[torch.as_tensor(idx)] = x
        n = torch.stack([full[torch.as_tensor(labels == j)].norm() for j in (0, 2, 3)])
        return torch_loss(prob, full) + 0.3 * (n ** (2.0 / depth)).sum()

    Href = torch.autograd.functional.hessian(f_support, torch.tensor(w[idx])).numpy()
    assert np.linalg.norm(H - Href) <= 1e-12 * np.linalg.norm(Href)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_gap_identity_and_balance(rng, depth):
    # L - L_w = lam sum_j (AM_j - GM_j) >= 0, zero at the balanced lift, positive off it.
    prob = random_problem(rng)
    obj = GatedObjective(prob, depth, lam=0.4)
    params = GatedParams(rng.normal(size=prob.n_features), rng.normal(size=(4, depth - 1)))
    gap = obj.value(params) - obj.penalised_value(params)
    assert gap > 0
    assert abs(gap - obj.gap(params)) <= 1e-12 * max(1.0, abs(obj.value(params)))
    balanced = DGating(depth, prob.groups).lift(obj.gating.collapse(params))
    assert abs(obj.value(balanced) - obj.penalised_value(balanced)) <= 1e-13 * obj.value(balanced)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_balancedness_identity(rng, depth):
    # <omega_j, dL/domega_j> - gamma_jd dL/dgamma_jd = (2 lam/D) Delta_jd (docs/theory.md
    # [T-balance]).
    prob = random_problem(rng, loss="logistic")
    lam = 0.7
    obj = GatedObjective(prob, depth, lam)
    params = GatedParams(rng.normal(size=prob.n_features), rng.normal(size=(4, depth - 1)))
    grad = obj.grad(params)
    lhs = prob.groups.group_sums(params.omega * grad.omega)[:, None] - params.gates * grad.gates
    rhs = 2 * lam / depth * obj.gating.imbalance(params)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-14)
