"""Every negative control must be flagged by the checks it targets."""

import pytest

from dgating.proofs_check.controls import CONTROLS, run_control


@pytest.mark.parametrize("name", list(CONTROLS))
def test_negative_control_is_flagged(name):
    res = run_control(name, n_random=16)
    assert any(v == "fail" for v in res.expect.values())
    assert res.flagged, [(c.name, c.value) for c in res.checks]
    assert res.as_expected, [(c.name, c.passed, res.expect[c.name]) for c in res.checks]
    assert {c.name for c in res.checks} == set(res.expect)


def test_unknown_control_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown `control` 'x'. Valid: 'origin_saddle_d2'"):
        run_control("x")
