"""Property tests: whatever the option values or sweep keys, the command line ends with a status
of the contract, one stderr line on error, and never a traceback."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgating._validation import InputError
from dgating.simulations.sweep import _AXES, SweepConfig

from .harness import EXAMPLE, assert_one_line, run_case

NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["0", "-0", "1e999", "nan", "", " ", "3.", "0x10", "1_000", "١"]),
)
TEXT = st.one_of(NUMBERS.map(str), st.text(max_size=8))
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=TEXT, lam=TEXT, seed=TEXT, scale=TEXT, tol=TEXT)
def test_solve_options_never_traceback(capsys, depth, lam, seed, scale, tol):
    argv = ["solve", str(EXAMPLE), "--depth", depth, "--lam", lam, "--seed", seed]
    argv += ["--init-scale", scale, "--tol", tol, "--max-seconds", "20", "--json"]
    code, _, err, _ = run_case(capsys, argv, bound=30)
    assert code in (0, 1, 2)
    if code == 2:
        assert_one_line(err, "dgating solve: error: ")
    elif code == 1:
        assert_one_line(err, "dgating solve: result not trustworthy: ")
    else:
        assert err == ""


@given(
    key=st.sampled_from([*_AXES, "init_scale", "decay", "n_eval", "rtol", "t_end", "backend"]),
    value=st.one_of(SCALARS, st.lists(SCALARS, max_size=4)),
)
def test_sweep_keys_are_accepted_or_rejected_as_input_errors(key, value):
    try:
        cfg = SweepConfig.from_dict({key: value})
    except InputError as exc:
        assert "\n" not in str(exc)
        assert f"`{key}`" in str(exc) or "n_features" in str(exc) or "sweep grid" in str(exc)
        return
    # Accepted: every value is checked, bounded and of the documented type.
    for c in cfg.configurations():
        assert 2 <= c.depth <= 32 and c.lam > 0 and c.seed >= 0 and 10 <= c.n_eval
        assert math.isfinite(c.t_end) and 4 * c.lam * c.t_end / c.depth <= 200 * (1 + 1e-12)
    assert len(cfg.configurations()) == len({c.key for c in cfg.configurations()})
