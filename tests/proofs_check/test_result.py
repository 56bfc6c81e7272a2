import json
import math

from dgating.proofs_check.result import CheckResult


def test_margin_is_tol_minus_violation():
    res = CheckResult.from_violation("x", 3e-9, 1e-8)
    assert res.passed
    assert math.isclose(res.margin, 7e-9)
    assert res.value == 3e-9


def test_nonfinite_violation_fails():
    res = CheckResult.from_violation("x", float("nan"), 1.0)
    assert not res.passed
    assert res.margin == -math.inf


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
