import json
import math

import pytest

from dgating.proofs_check.result import CheckResult, outcome


def test_margin_is_tol_minus_violation():
    res = CheckResult.from_violation("x", 3e-9, 1e-8)
    assert res.passed
    assert math.isclose(res.margin, 7e-9)
    assert res.value == 3e-9


@pytest.mark.parametrize("violation, value", [(math.nan, None), (math.inf, None), (0.0, math.nan)])
def test_nonfinite_violation_or_value_fails(violation, value):
    res = CheckResult.from_violation("x", violation, 1.0, value=value)
    assert res.status == "fail" and not res.passed
    assert res.margin == -math.inf


def test_undecided_statuses_never_pass():
    for status in ("inconclusive", "not-applicable"):
        res = CheckResult.undecided("x", status, 1e-8, "why")
        assert res.status == status and not res.passed
        assert res.to_dict()["details"]["reason"] == "why"
    with pytest.raises(ValueError, match="'inconclusive' or 'not-applicable'"):
        CheckResult.undecided("x", "pass", 1e-8, "no")
    with pytest.raises(ValueError, match="`status` must be one of"):
        CheckResult("x", "maybe", 0.0, 1.0)


@pytest.mark.parametrize(
    "status, expect, result",
    [
        ("pass", "pass", "ok"),
        ("not-applicable", "pass", "ok"),
        ("fail", "fail", "ok"),
        ("inconclusive", "pass", "inconclusive"),
        ("inconclusive", "fail", "unexpected"),
        ("fail", "pass", "unexpected"),
        ("pass", "fail", "unexpected"),
        ("not-applicable", "fail", "unexpected"),
    ],
)
def test_outcome(status, expect, result):
    assert outcome(status, expect) == result


def test_result_is_frozen_and_json_able():
    import numpy as np

    res = CheckResult.from_violation("x", 1.0, 0.5, arr=np.arange(3), flag=np.bool_(True))
    try:
        res.passed = True  # type: ignore[misc]
    except AttributeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("CheckResult must be frozen")
    text = json.dumps(res.to_dict())
    assert json.loads(text)["details"]["arr"] == [0, 1, 2]
    assert json.loads(text)["status"] == "fail" and json.loads(text)["passed"] is False
