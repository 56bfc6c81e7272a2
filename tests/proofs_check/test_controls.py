"""Every negative control must be flagged by the checks it targets."""

import pytest

from dgating.proofs_check.controls import CONTROLS, SENSITIVE_WITHIN, run_control


@pytest.mark.parametrize("name", [n for n in CONTROLS if not n.startswith("perturbed")])
def test_negative_control_is_flagged(name):
    res = run_control(name, n_random=16)
    assert any(v == "fail" for v in res.expect.values())
    assert res.flagged, [(c.name, c.value) for c in res.checks]
    assert res.as_expected, [(c.name, c.passed, res.expect[c.name]) for c in res.checks]
    assert {c.name for c in res.checks} == set(res.expect)


@pytest.mark.parametrize("name", ["perturbed_d3", "perturbed_network_d2"])
def test_checks_are_sensitive_on_the_support(name):
    # Each check passes at the minimiser and 0.1 tolerance radii from it (not trigger-happy) and
    # fails within SENSITIVE_WITHIN tolerance radii (it sees defects of the size it claims to).
    res = run_control(name, n_random=16)
    assert {c.name for c in res.checks} == {
        "sensitivity.Lw_stationarity",
        "sensitivity.Lw_perturbation",
        "sensitivity.L_gradient",
        "sensitivity.L_perturbation",
    }
    for c in res.checks:
        assert c.details["status_at_minimiser"] == "pass", c
        assert c.details["multiples"][0] == 0.1 and c.details["statuses"][0] == "pass", c
        assert c.passed and 1.0 <= c.value <= SENSITIVE_WITHIN, c
    assert res.as_expected


def test_insensitive_check_fails_the_sensitivity_row(monkeypatch):
    # Negative control: a first-order check with a tolerance 10^4 times too loose detects
    # nothing within SENSITIVE_WITHIN tolerance radii, and its sensitivity row fails.
    from dgating.proofs_check import controls

    loose = controls.check_penalised_certificate
    monkeypatch.setattr(
        controls, "check_penalised_certificate", lambda *a, **k: loose(*a, tol=1e-3, **k)
    )
    res = run_control("perturbed_d3", n_random=4)
    stat = next(c for c in res.checks if c.name == "sensitivity.Lw_stationarity")
    assert stat.status == "fail" and stat.value > SENSITIVE_WITHIN


def test_unknown_control_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown `control` 'x'. Valid: 'origin_saddle_d2'"):
        run_control("x")
