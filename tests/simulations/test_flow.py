"""Gradient flow: exact imbalance identity, batched engine against scipy, recorded quantities."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from dgating import GatedObjective, GatedParams, TorchProblem
from dgating._validation import InvalidParameterError
from dgating.simulations import (
    gap_per_group,
    initial_params,
    integrate_flow,
    integrate_flows,
    make_problem,
)

T_END = 20.0


def _identity_error(res, lam, depth, rate=None):
    """max |Delta(T) - Delta(0) exp(-rate T)| / max |Delta(0)|, rate = 4 lam / D by default."""
    rate = 4 * lam / depth if rate is None else rate
    d0 = res.imbalance[0]
    return float(np.abs(res.imbalance[-1] - d0 * np.exp(-rate * res.t[-1])).max()) / float(
        np.abs(d0).max()
    )


@pytest.mark.parametrize("depth", [2, 3, 4, 5, 6])
def test_imbalance_decays_exactly_exponentially(depth):
    prob = make_problem(40, 8, 4, seed=depth)
    lam = 0.3
    obj = GatedObjective(prob, depth, lam)
    res = integrate_flow(obj, initial_params(obj, seed=depth), (0.0, T_END), t_eval=[0, T_END])
    assert res.success
    assert _identity_error(res, lam, depth) <= 1e-9
    # Negative control: the same comparison rejects a wrong rate (2 lam / D).
    assert _identity_error(res, lam, depth, rate=2 * lam / depth) > 1e-3


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_batched_engine_agrees_with_scipy(loss):
    prob_a = make_problem(40, 8, 4, seed=0, loss=loss)
    prob_b = make_problem(40, 8, 4, seed=1, loss=loss)  # different data in the same batch
    specs = [(prob_a, 2, 0.2), (prob_a, 3, 0.3), (prob_b, 4, 0.1), (prob_a, 5, 0.5)]
    objs = [GatedObjective(p, d, lam) for p, d, lam in specs]
    p0 = [initial_params(o, seed=i) for i, o in enumerate(objs)]
    t_eval = np.linspace(0.0, T_END, 21)
    rtol = 1e-8
    batch = integrate_flows(objs, p0, T_END, t_eval=t_eval, rtol=rtol, atol=1e-12)
    for obj, prm, res in zip(objs, p0, batch):
        ref = integrate_flow(obj, prm, (0.0, T_END), t_eval=t_eval, rtol=1e-13, atol=1e-14)
        z = np.concatenate([res.omega, res.gates.reshape(t_eval.size, -1)], axis=1)
        z_ref = np.concatenate([ref.omega, ref.gates.reshape(t_eval.size, -1)], axis=1)
        units = np.abs(z - z_ref) / (1e-12 + rtol * np.abs(z_ref))
        # Errors in tolerance units (scipy's convention). The control is local, the comparison
        # global (a few hundred steps accumulate): measured <= 10 units, allow 50.
        assert units.max() <= 50, (obj.depth, units.max())
        assert res.success and res.nfev > 0
        assert _identity_error(res, obj.lam, obj.depth) <= 1e-6
    # Negative control: the same comparison fails against a flow with another lam.
    wrong = integrate_flow(
        GatedObjective(prob_a, 3, 0.35), p0[1], (0.0, T_END), t_eval=t_eval, rtol=1e-10
    )
    units = np.abs(batch[1].omega - wrong.omega) / (1e-12 + rtol * np.abs(wrong.omega))
    assert units.max() > 1e3


def test_batched_engine_accepts_a_torch_problem():
    import torch

    prob = make_problem(40, 8, 4, seed=0)
    X, y = torch.as_tensor(prob.X), torch.as_tensor(prob.y)
    tprob = TorchProblem(lambda w: 0.5 * ((X @ w - y) ** 2).mean(), prob.groups)
    obj_t, obj = GatedObjective(tprob, 3, 0.3), GatedObjective(prob, 3, 0.3)
    p0 = initial_params(obj, seed=3)
    res = integrate_flow(obj_t, p0, (0.0, 5.0), backend="batched", rtol=1e-9, t_eval=[0, 5.0])
    ref = integrate_flow(obj, p0, (0.0, 5.0), rtol=1e-12, t_eval=[0, 5.0])
    assert np.abs(res.omega - ref.omega).max() <= 1e-6
    assert res.backend == "batched" and ref.backend == "scipy"


def test_recorded_quantities_are_consistent():
    prob = make_problem(40, 8, 4, seed=2)
    obj = GatedObjective(prob, 3, 0.3)
    res = integrate_flow(
        obj, initial_params(obj, seed=2), (0.0, 10.0), t_eval=np.linspace(0, 10, 6)
    )
    for i in range(res.t.size):
        prm = res.params(i)
        assert res.objective[i] == pytest.approx(obj.value(prm), rel=1e-12)
        assert res.penalised[i] == pytest.approx(obj.penalised_value(prm), rel=1e-12)
        assert res.gap[i] == pytest.approx(obj.gap(prm), rel=1e-9, abs=1e-15)
        np.testing.assert_allclose(res.imbalance[i], obj.gating.imbalance(prm), atol=1e-14)
        w = obj.gating.collapse(prm)
        np.testing.assert_allclose(res.group_norms[i], prob.groups.norms(w), rtol=1e-12)
    assert np.all(np.diff(res.objective) <= 1e-12)  # a gradient flow decreases L
    assert res.support.shape == res.group_norms.shape


def _gap_mp(sq_omega: float, gates: np.ndarray) -> float:
    mpmath.mp.dps = 60
    vals = [mpmath.mpf(sq_omega)] + [mpmath.mpf(g) ** 2 for g in gates]
    am = mpmath.fsum(vals) / len(vals)
    gm = mpmath.exp(mpmath.fsum(mpmath.log(v) for v in vals) / len(vals))
    return float(am - gm)


@pytest.mark.parametrize("depth", [2, 3, 5])
@pytest.mark.parametrize("eps", [1e-2, 1e-6, 1e-11])
def test_gap_per_group_is_free_of_cancellation(depth, eps, rng):
    gates = 1.3 * (1 + eps * rng.normal(size=depth - 1))
    sq = 1.3**2
    exact = _gap_mp(sq, gates)
    got = float(gap_per_group(np.array([sq]), gates[None])[0])
    assert got == pytest.approx(exact, rel=1e-9)
    if eps <= 1e-11:
        # Negative control: the direct difference AM - GM has lost (almost) every digit.
        am = (sq + np.sum(gates**2)) / depth
        gm = np.exp((np.log(sq) + np.sum(np.log(gates**2))) / depth)
        assert abs((am - gm) - exact) > 1e-2 * exact


def test_gap_per_group_handles_zero_groups():
    assert gap_per_group(np.array([0.0]), np.zeros((1, 2)))[0] == 0.0
    # A zero gate: GM = 0, the gap is the arithmetic mean.
    assert gap_per_group(np.array([3.0]), np.array([[0.0, 0.0]]))[0] == pytest.approx(1.0)


def test_initial_params_are_seeded_and_unbalanced():
    prob = make_problem(20, 6, 3, seed=0)
    obj = GatedObjective(prob, 4, 0.1)
    a, b = initial_params(obj, seed=5), initial_params(obj, seed=5)
    np.testing.assert_array_equal(a.omega, b.omega)
    assert np.abs(obj.gating.imbalance(a)).min() > 0
    ridge = initial_params(obj, init="ridge", seed=1, init_scale=0.5)
    balanced = obj.gating.lift(obj.gating.collapse(ridge))
    np.testing.assert_allclose(obj.gating.collapse(ridge), obj.gating.collapse(balanced))
    assert obj.gating.relative_imbalance(ridge) > 1e-3


def test_integrate_flow_validates_its_input():
    prob = make_problem(20, 6, 3, seed=0)
    obj = GatedObjective(prob, 3, 0.1)
    p0 = initial_params(obj)
    with pytest.raises(InvalidParameterError, match="Unknown `backend` 'jax'. Valid: 'scipy'"):
        integrate_flow(obj, p0, (0, 1), backend="jax")
    with pytest.raises(InvalidParameterError, match="`t_span` must satisfy t0 < t1"):
        integrate_flow(obj, p0, (1, 0))
    with pytest.raises(InvalidParameterError, match="`t_eval` must be a non-empty sorted"):
        integrate_flow(obj, p0, (0, 1), t_eval=[0.5, 2.0])
    with pytest.raises(InvalidParameterError, match="`gates` must have shape"):
        integrate_flow(obj, GatedParams(p0.omega, p0.gates[:, :1]), (0, 1))
    with pytest.raises(InvalidParameterError, match="share one grouping"):
        other = GatedObjective(make_problem(20, 6, 2, seed=0), 3, 0.1)
        integrate_flows([obj, other], [p0, initial_params(other)], 1.0)
