"""The bound arithmetic of ``benchmarks/bench_solvers.py`` (timed-out fits are lower bounds).

A pair ``(value, sign)`` stands for a number known exactly (sign 0), at least ``value`` (+1) or
at most ``value`` (-1); ``None``: nothing is known. Each expected sign below follows from the
monotonicity of ``a / b`` (increasing in ``a``, decreasing in ``b``) and of median / max.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_solvers.py"
_SPEC = importlib.util.spec_from_file_location("bench_solvers", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


@pytest.mark.parametrize(
    ("num_sign", "den_sign", "expected"),
    [
        (0, 0, 0),
        (0, 1, -1),  # exact over "at least": at most
        (1, 0, 1),  # "at least" over exact: at least
        (1, -1, 1),
        (-1, 1, -1),
        (0, -1, 1),
        (1, 1, None),  # bound over a bound of the same side: unknown
        (-1, -1, None),
    ],
)
def test_bounded_sign(num_sign, den_sign, expected):
    value, sign = bench.bounded((3.0, num_sign), (4.0, den_sign))
    assert value == 0.75
    assert sign == expected


def test_bounded_zero_denominator_is_not_a_number():
    value, _ = bench.bounded((3.0, 0), (0.0, 0))
    assert np.isnan(value)
    assert bench.show((value, 0), ".3g") == "?"


def test_show_marks_bounds():
    assert bench.show((600.0, 1), ".0f") == ">600"
    assert bench.show((0.002, -1), ".3g") == "<0.002"
    assert bench.show((2.5, -1), ".3g", strict=False) == "<=2.5"
    assert bench.show((2.5, 0), ".3g", strict=False) == "2.5"
    assert bench.show((2.5, None), ".3g") == "?"


@pytest.mark.parametrize("how", [np.median, np.max])
def test_aggregate_signs(how):
    assert bench.aggregate([(1.0, 0), (2.0, 0), (5.0, 0)], how) == (float(how([1, 2, 5])), 0)
    assert bench.aggregate([(1.0, 0), (2.0, -1), (5.0, 0)], how)[1] == -1
    assert bench.aggregate([(1.0, 1), (2.0, 0), (5.0, 0)], how)[1] == 1
    # bounds of both sides, or an unknown, make the aggregate unknown
    assert bench.aggregate([(1.0, 1), (2.0, -1), (5.0, 0)], how)[1] is None
    assert bench.aggregate([(1.0, None), (2.0, 0), (5.0, 0)], how)[1] is None
