"""The D-Gating parametrisation: lift/collapse, symmetries, AM-GM, chain rule against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dgating import DGating, GatedParams, Groups

LABELS = np.array([0, 0, 0, 1, 1, 2, -1])
# Group norms are sums of squares of products of up to D factors; once those squares leave the
# normal float range (below ~1e-308) they lose relative precision. Magnitudes in (0, 1e-30) are
# therefore excluded: products of four factors and their squares stay normal (zeros are kept).
finite = st.one_of(st.just(0.0), st.floats(1e-30, 3.0), st.floats(-3.0, -1e-30))


def random_params(rng, gating: DGating) -> GatedParams:
    g = gating.groups
    return GatedParams(rng.normal(size=g.n_features), rng.normal(size=(g.n_groups, gating.n_gates)))


def torch_collapse(omega: torch.Tensor, gates: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """An independent implementation of the collapse map for autograd."""
    prod = torch.cat([gates.prod(dim=1), torch.ones(1)])  # index -1 picks the trailing 1
    return omega * prod[torch.tensor(labels)]


@pytest.mark.parametrize("depth", [2, 3, 4, 6])
def test_lift_is_balanced_and_collapses_back(rng, depth):
    gating = DGating(depth, LABELS)
    w = rng.normal(size=LABELS.size)
    w[3:5] = 0.0  # a zero group
    signs = rng.choice([-1.0, 1.0], size=(3, depth - 1))
    params = gating.lift(w, signs)
    np.testing.assert_allclose(gating.collapse(params), w, rtol=1e-14, atol=1e-15)
    assert np.max(np.abs(gating.imbalance(params))) <= 1e-14
    assert np.all(np.sign(params.gates[[0, 2]]) == signs[[0, 2]])
    np.testing.assert_array_equal(params.omega[3:5], 0.0)


@pytest.mark.parametrize("depth", [2, 3, 5])
@given(w=arrays(np.float64, LABELS.size, elements=finite), c=st.floats(0.2, 5.0))
def test_rescaling_symmetry(depth, w, c):
    # Scaling omega_j by c and one gate gamma_{j,d} by 1/c leaves w unchanged.
    gating = DGating(depth, LABELS)
    params = gating.lift(w)
    gates = params.gates.copy()
    gates[1, -1] /= c
    omega = params.omega * np.where(LABELS == 1, c, 1.0)
    np.testing.assert_allclose(gating.collapse(GatedParams(omega, gates)), w, atol=1e-12)


@pytest.mark.parametrize("depth", [2, 3, 4])
@given(
    omega=arrays(np.float64, LABELS.size, elements=finite),
    gates=arrays(np.float64, (3, 3), elements=finite),
)
def test_am_gm_bound(depth, omega, gates):
    # (1/D)(||omega_j||^2 + sum_d gamma_jd^2) >= ||w_j||^(2/D), equality at the balanced lift.
    gating = DGating(depth, LABELS)
    params = GatedParams(omega, gates[:, : depth - 1])
    am, gm = gating.penalty_per_group(params), gating.geometric_means(params)
    assert np.all(am >= gm - 1e-12 * (1 + am))
    lifted = gating.lift(gating.collapse(params))
    np.testing.assert_allclose(
        gating.penalty_per_group(lifted), gating.geometric_means(lifted), rtol=1e-12, atol=1e-300
    )


@given(
    omega=arrays(np.float64, LABELS.size, elements=finite),
    gates=arrays(np.float64, (3, 2), elements=finite),
)
def test_pack_unpack_identity(omega, gates):
    gating = DGating(3, LABELS)
    params = GatedParams(omega, gates)
    back = gating.unpack(gating.pack(params))
    np.testing.assert_array_equal(back.omega, omega)
    np.testing.assert_array_equal(back.gates, gates)


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_pullback_matches_autograd(rng, depth):
    gating = DGating(depth, LABELS)
    params = random_params(rng, gating)
    params.gates[1, 0] = 0.0  # a zero gate: products are formed without division
    v = rng.normal(size=LABELS.size)
    omega = torch.tensor(params.omega, requires_grad=True)
    gates = torch.tensor(params.gates, requires_grad=True)
    (torch_collapse(omega, gates, LABELS) @ torch.tensor(v)).backward()
    pulled = gating.pullback(params, v)
    np.testing.assert_allclose(pulled.omega, omega.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pulled.gates, gates.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_pushforward_and_curvature_match_autograd(rng, depth):
    # J v and sum_i g_i Hess(w_i) v against torch.autograd.functional on the collapse map.
    gating = DGating(depth, LABELS)
    params, direction = random_params(rng, gating), random_params(rng, gating)
    g = rng.normal(size=LABELS.size)
    k = gating.groups.n_features

    def collapse_flat(z: torch.Tensor) -> torch.Tensor:
        return torch_collapse(z[:k], z[k:].reshape(3, depth - 1), LABELS)

    z, v = torch.tensor(gating.pack(params)), torch.tensor(gating.pack(direction))
    _, jv = torch.autograd.functional.jvp(collapse_flat, z, v)
    np.testing.assert_allclose(gating.pushforward(params, direction), jv.numpy(), rtol=1e-12)
    _, hv = torch.autograd.functional.hvp(lambda z: collapse_flat(z) @ torch.tensor(g), z, v)
    curv = gating.pack(gating.pullback_derivative(params, g, direction))
    np.testing.assert_allclose(curv, hv.numpy(), rtol=1e-12, atol=1e-13)


def test_imbalance_negative_control(rng):
    # An unbalanced factorisation of the same w has non-zero imbalance.
    gating = DGating(3, Groups(LABELS))
    params = gating.lift(rng.normal(size=LABELS.size))
    gates = params.gates.copy()
    gates[0, 0] *= 2.0
    omega = params.omega * np.where(LABELS == 0, 0.5, 1.0)
    unbalanced = GatedParams(omega, gates)
    np.testing.assert_allclose(gating.collapse(unbalanced), gating.collapse(params), rtol=1e-14)
    assert gating.relative_imbalance(unbalanced) > 0.1
    gi = gating.gate_imbalance(unbalanced)
    assert gi.shape == (3, 2, 2) and abs(gi[0, 0, 1]) > 0.1
