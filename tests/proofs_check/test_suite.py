"""The quick suite passes (default run); the full suite is marked slow."""

import csv
import io
import json

import numpy as np
import pytest

from dgating.proofs_check.result import CheckResult
from dgating.proofs_check.suite import SuiteResult, SuiteRow, run_suite


@pytest.fixture(scope="module")
def quick():
    return run_suite("quick", n_jobs=2, progress=False)


def test_quick_suite_passes(quick):
    assert quick.passed, [(r.problem, r.depth, r.check.name, r.check.value) for r in quick.failures]
    assert quick.status in ("pass", "inconclusive")
    assert quick.depths == (2, 3, 4)
    # D >= 3: the zero-group condition is void, reported not-applicable (never a NaN pass).
    zero = [r for r in quick.rows if r.check.name.endswith("Lw_zero_groups") and r.depth >= 3]
    assert zero and all(r.check.status == "not-applicable" for r in zero)
    for r in quick.rows:
        assert r.check.status != "pass" or np.isfinite(r.check.value), r
    controls = [r for r in quick.rows if r.kind == "control"]
    assert controls and all(r.ok for r in controls)
    assert any(r.expect == "fail" for r in controls)


def test_quick_suite_covers_problems_depths_and_checks(quick):
    keys = {(r.problem, r.depth) for r in quick.rows if r.kind == "check"}
    assert len(keys) == len(quick.config["problems"]) * 3
    names = {r.check.name for r in quick.rows if r.kind == "check"}
    for required in (
        "a.balanced",
        "a.Lw_hessian",
        "a.Lw_perturbation",
        "b.L_hessian",
        "b.L_perturbation",
        "values.unbalanced",
        "multistart.certified",
    ):
        assert required in names
    assert len(quick.multistart) == len(keys)  # F7 data


def test_quick_suite_serialises(quick, tmp_path):
    data = json.loads(quick.to_json())
    assert data["passed"] is True and data["n_failures"] == 0
    assert data["status"] == quick.status
    assert sum(data["status_counts"].values()) == sum(r.kind == "check" for r in quick.rows)
    assert {row["status"] for row in data["rows"]} <= {"pass", "fail", "inconclusive"} | {
        "not-applicable"
    }
    assert {"rows", "runs", "multistart", "depths"} <= set(data)
    paths = quick.write(tmp_path)
    assert sorted(p.name for p in paths) == ["verify_quick.csv", "verify_quick.json"]
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries
    rows = list(csv.DictReader(io.StringIO(paths[1].read_text())))
    assert len(rows) == len(quick.rows)
    assert "Negative controls" in quick.table()


def test_quick_suite_round_trips_through_json(quick):
    again = SuiteResult.from_dict(json.loads(quick.to_json()))
    assert again.passed == quick.passed and len(again.rows) == len(quick.rows)
    assert again.table() == quick.table()
    ms, ms2 = quick.multistart[0], again.multistart[0]
    assert ms.match_rate == ms2.match_rate
    assert list(ms.objective_gated) == list(ms2.objective_gated)


def _fake_result(passed: bool, expect: str, kind: str = "control") -> SuiteResult:
    check = CheckResult.from_violation("b.L_hessian", 0.0 if passed else 1.0, 0.5)
    row = SuiteRow("ctl", 2, 0.1, check, kind=kind, expect=expect)
    return SuiteResult("quick", (2,), (row,), (), (), 0.0)


def _inconclusive_result() -> SuiteResult:
    check = CheckResult.undecided("b.L_hessian", "inconclusive", 1e-8, "singular")
    ok = CheckResult.undecided("b.Lw_zero_groups", "not-applicable", 1e-7, "void")
    rows = (SuiteRow("net", 3, 0.1, check), SuiteRow("net", 3, 0.1, ok))
    return SuiteResult("quick", (3,), rows, (), (), 0.0)


def test_negative_control_that_passes_fails_the_suite():
    assert not _fake_result(passed=True, expect="fail").passed
    assert _fake_result(passed=False, expect="fail").passed


def test_suite_status_and_counts():
    res = _inconclusive_result()
    assert res.passed and res.status == "inconclusive" and len(res.inconclusive) == 1
    assert res.status_counts() == {"pass": 0, "fail": 0, "inconclusive": 1, "not-applicable": 1}
    assert _fake_result(True, "pass", kind="check").status == "pass"
    assert _fake_result(False, "pass", kind="check").status == "fail"
    table = res.table()
    assert "INCONCLUSIVE" in table and "1 inconclusive" in table
    again = SuiteResult.from_dict(json.loads(res.to_json()))
    assert [r.check.status for r in again.rows] == ["inconclusive", "not-applicable"]


def test_cli_exit_status(monkeypatch, capsys):
    from dgating.cli import main
    from dgating.proofs_check import suite

    monkeypatch.setattr(suite, "run_suite", lambda *a, **k: _fake_result(True, "fail"))
    assert main(["verify", "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert "FAILED" in out and err.count("\n") == 1 and "1 unexpected outcomes" in err
    monkeypatch.setattr(suite, "run_suite", lambda *a, **k: _fake_result(False, "fail"))
    assert main(["verify", "--no-progress", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["passed"] is True and json.loads(out)["status"] == "pass" and not err
    # Inconclusive: exit 0 with one stderr line naming the rows; 1 with --strict.
    monkeypatch.setattr(suite, "run_suite", lambda *a, **k: _inconclusive_result())
    assert main(["verify", "--no-progress", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "inconclusive"
    assert err == "dgating verify: 1 checks inconclusive: net D=3 b.L_hessian\n"
    assert main(["verify", "--no-progress", "--strict"]) == 1
    assert "INCONCLUSIVE" in capsys.readouterr().out


def test_cli_small_run_writes_json(tmp_path, capsys):
    from dgating.cli import main

    code = main(
        [
            "verify",
            "--problem",
            "reg_wide",
            "--depth",
            "2",
            "3",
            "--no-controls",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "reg_wide" in out and "PASSED" in out
    data = json.loads((tmp_path / "verify_quick.json").read_text())
    assert data["depths"] == [2, 3]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["verify", "--suite", "huge"], "Unknown `--suite` 'huge'"),
        (["verify", "--depth", "1"], "`--depth` must be an integer in [2, 32]; got 1.0."),
        (["verify", "--problem", "nope"], "Unknown `--problem` 'nope'"),
        (["verify", "--jobs", "0"], "`--jobs` must be an integer in [1, 256]; got 0."),
    ],
)
def test_cli_bad_input_exits_2(argv, message, capsys):
    from dgating.cli import main

    assert main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_full_suite_passes():
    res = run_suite("full", n_jobs=2, progress=False)
    assert res.passed, [(r.problem, r.depth, r.check.name, r.check.value) for r in res.failures]
    assert res.depths == (2, 3, 4, 5)
