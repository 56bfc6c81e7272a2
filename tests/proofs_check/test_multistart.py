import numpy as np

from dgating import GroupedProblem
from dgating.proofs_check.multistart import check_multistart, run_multistart
from dgating.proofs_check.problems import PROBLEMS


def test_convex_case_both_routes_agree():
    prob = PROBLEMS["reg_tall"].problem()
    ms = run_multistart(prob, 2, PROBLEMS["reg_tall"].lam(2), seeds=range(3))
    assert ms.match_rate == 1.0  # group lasso with n > p: a unique minimiser
    assert check_multistart(ms).passed
    assert np.ptp(ms.objective_gated) <= 1e-10 * abs(ms.objective_gated[0])


def test_nonconvex_records_distinct_minimisers():
    # Two well-separated local minima per group along the ray for q = 1/2: starts of either sign
    # of the data direction can end in different ones, yet every end point is certified.
    prob = GroupedProblem(np.eye(3) * np.sqrt(3.0), np.array([2.0, -1.5, 0.4]), [0, 1, 2])
    ms = run_multistart(prob, 4, 0.3, seeds=range(4), init_scale=1.0, name="toy")
    assert ms.objective_gated.shape == ms.distance.shape == (4,)
    assert ms.certified_gated.all() and ms.certified_prox.all()
    d = ms.to_dict()
    assert d["problem"] == "toy" and 0.0 <= d["match_rate"] <= 1.0


def _fabricated(certified: list[bool], inconclusive: list[bool]):
    from dgating.proofs_check.multistart import MultiStartResult

    n = len(certified) // 2
    arr = np.zeros(n)
    return MultiStartResult(
        "fake", 3, 0.1, tuple(range(n)), arr, arr, arr, arr == 0, arr == 0,
        np.array(certified[:n]), np.array(certified[n:]),
        np.array(inconclusive[:n]), np.array(inconclusive[n:]),
        arr.astype(int), arr.astype(int), 1e-6,
    )  # fmt: skip


def test_multistart_verdicts():
    assert check_multistart(_fabricated([True] * 4, [False] * 4)).status == "pass"
    undecided = check_multistart(
        _fabricated([True, False, True, True], [False, True, False, False])
    )
    assert undecided.status == "inconclusive" and undecided.details["n_inconclusive"] == 1
    assert undecided.details["reason"] == "1 of 4 minimisers neither certified nor refuted"
    refuted = check_multistart(_fabricated([True, False, True, False], [False, True, False, False]))
    assert refuted.status == "fail" and refuted.value == 0.25  # one of four refuted
