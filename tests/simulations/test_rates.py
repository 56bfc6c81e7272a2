"""Measured rates: the fit window, the imbalance rate 4 lam/D and the gap rates per class."""

from __future__ import annotations

import numpy as np
import pytest

from dgating import GatedObjective
from dgating._validation import InvalidParameterError
from dgating.simulations import (
    flow_rates,
    initial_params,
    integrate_flow,
    make_problem,
    measure_rate,
    theory_rates,
)

LAM = 0.3
DECAY = 30.0  # T = DECAY * D / (4 lam): the imbalance falls by e^-30, the gap to ~1e-26


def _flow(depth: int):
    # p = 12 features in 6 groups, 2 with true signal: both classes occur for these seeds.
    prob = make_problem(60, 12, 6, seed=0)
    obj = GatedObjective(prob, depth, LAM)
    t_end = DECAY * depth / (4 * LAM)
    if depth == 2:
        # D = 2 vanishing groups decay at 2 lam + 2 g_j, different per group: the slowest one
        # dominates the class sum only after a longer time.
        t_end *= 2
    res = integrate_flow(
        obj, initial_params(obj, seed=1), (0.0, t_end), t_eval=np.linspace(0, t_end, 300)
    )
    return obj, res


@pytest.fixture(scope="module")
def flows():
    return {depth: _flow(depth) for depth in (2, 3, 4, 5, 6)}


def test_measure_rate_recovers_a_known_rate_with_transient_and_floor():
    t = np.linspace(0.0, 80.0, 801)
    noise = 1e-13 * (1 + 0.5 * np.sin(37 * t))
    err = 2.0 * np.exp(-0.7 * t) * (1 + 0.5 * np.exp(-3 * t)) + noise
    est = measure_rate(t, err)
    # The window stops floor_margin = 3 decades above the floor, whose 1e-3 relative contribution
    # at the end of the window biases the slope by a few 1e-6.
    assert est.rate == pytest.approx(0.7, rel=2e-5)
    assert est.window[0] > 1.0  # transient excluded
    assert est.floor is not None and est.window[1] < 40.0  # floor detected and excluded
    assert est.r2 > 1 - 1e-8
    # Negative control: a window forced over the floor is visibly wrong.
    bad = measure_rate(t, err, window=(0.0, 80.0))
    assert abs(bad.rate - 0.7) > 0.1


def test_measure_rate_algebraic_and_validation():
    t = np.linspace(1.0, 100.0, 200)
    est = measure_rate(t, 3.0 * t**-2.5, kind="algebraic")
    assert est.rate == pytest.approx(2.5, rel=1e-10)
    with pytest.raises(InvalidParameterError, match="Unknown `kind` 'log'"):
        measure_rate(t, t, kind="log")
    with pytest.raises(InvalidParameterError, match="equal shape"):
        measure_rate(t, t[:-1])
    assert not measure_rate(t[:3], np.exp(-t[:3])).valid


@pytest.mark.parametrize("depth", [2, 3, 4, 5, 6])
def test_measured_imbalance_rate_is_4_lam_over_depth(flows, depth):
    obj, res = flows[depth]
    rates = flow_rates(res, obj)
    assert rates.theory["imbalance"] == pytest.approx(4 * LAM / depth, rel=1e-14)
    assert rates.imbalance.rate == pytest.approx(4 * LAM / depth, rel=1e-6)
    assert rates.imbalance.window[1] - rates.imbalance.window[0] > 0.2 * res.t[-1]
    # Negative control: 2 lam / D is rejected by the same comparison.
    assert rates.imbalance.rate != pytest.approx(2 * LAM / depth, rel=1e-6)


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_class_gap_rates_agree_with_derived_rates(flows, depth):
    obj, res = flows[depth]
    rates = flow_rates(res, obj)
    assert rates.vanishing.any() and (~rates.vanishing).any(), "both classes must occur"
    theory = theory_rates(depth, LAM)
    # Surviving groups: gap ~ Delta^2, rate 8 lam / D; vanishing groups: 4 lam / D (D >= 3).
    assert theory["surviving"] == pytest.approx(8 * LAM / depth)
    assert theory["vanishing"] == pytest.approx(4 * LAM / depth)
    # Measured to ~3e-5 (the surviving class needs its norms converged; window chosen
    # automatically): 1e-3 leaves room and still separates every alternative below.
    tol = 1e-3
    assert rates.gap_surviving.rate == pytest.approx(theory["surviving"], rel=tol)
    assert rates.gap_vanishing.rate == pytest.approx(theory["vanishing"], rel=tol)
    # The total gap is dominated by the slower (vanishing) class.
    assert rates.gap.rate == pytest.approx(theory["vanishing"], rel=tol)
    # Negative controls: a wrong rate, and the classes swapped, are rejected.
    assert rates.gap_vanishing.rate != pytest.approx(2 * LAM / depth, rel=tol)
    assert rates.gap_surviving.rate != pytest.approx(theory["vanishing"], rel=tol)
    assert rates.gap_vanishing.rate != pytest.approx(theory["surviving"], rel=tol)


def test_depth_two_vanishing_rate_uses_the_limit_gradient(flows):
    obj, res = flows[2]
    rates = flow_rates(res, obj)
    assert rates.g_vanishing is not None and 0 < rates.g_vanishing < LAM
    expected = 2 * LAM + 2 * rates.g_vanishing
    assert rates.theory["vanishing"] == pytest.approx(expected)
    # Slow modes (rate lam - g) make the D = 2 class converge more slowly: 1 %.
    assert rates.gap_vanishing.rate == pytest.approx(expected, rel=1e-2)
    assert rates.gap_surviving.rate == pytest.approx(8 * LAM / 2, rel=1e-3)
    # Negative control: without the gradient term (4 lam / D = 2 lam) the rate is rejected.
    assert rates.gap_vanishing.rate != pytest.approx(2 * LAM, rel=1e-2)


def test_derived_rates_match_the_closed_forms():
    # Numeric twin of dgating.theory: the sympy derivations, evaluated, equal the closed forms
    # 4 lam/D, 8 lam/D and 4 lam/D (D >= 3) or 2 lam + 2 g (D = 2), typed here independently.
    for depth in (2, 3, 4, 5):
        for lam, g in ((0.2, 0.05), (0.7, 0.3)):
            r = theory_rates(depth, lam, g=g)
            assert r["imbalance"] == pytest.approx(4 * lam / depth, rel=1e-14)
            assert r["surviving"] == pytest.approx(8 * lam / depth, rel=1e-14)
            expected = 2 * lam + 2 * g if depth == 2 else 4 * lam / depth
            assert r["vanishing"] == pytest.approx(expected, rel=1e-14)
        # Negative control: a different lam gives different rates.
        assert theory_rates(depth, 0.3)["imbalance"] != pytest.approx(
            theory_rates(depth, 0.2)["imbalance"]
        )
    assert np.isnan(theory_rates(2, 0.2)["vanishing"])  # needs g


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_gap_stays_below_the_theory_bound(flows, depth):
    from dgating.simulations import gap_bound

    _, res = flows[depth]
    bound = gap_bound(res)
    assert np.all(res.gap <= bound * (1 + 1e-9))
    # Negative control: the bound with the (too fast) surviving rate 8 lam/D is violated.
    fast = bound[0] * np.exp(-8 * LAM * res.t / depth)
    assert np.any(res.gap > fast)
