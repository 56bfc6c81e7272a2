"""`dgating path`: the JSON contract, the tidy CSV, exit statuses and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import dgating.paths
from dgating import load_problem, solve
from dgating.cli import main

EXAMPLE = Path(__file__).parents[1] / "src" / "dgating" / "data" / "example.npz"


def _strict(text: str) -> dict:
    def reject(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=reject)


@pytest.mark.parametrize("depth", [2, 3])
def test_path_json_and_csv_contract(capsys, tmp_path, depth):
    out_csv = tmp_path / "path.csv"
    argv = ["path", str(EXAMPLE), "--depth", str(depth), "--n-lams", "6"]
    assert main([*argv, "--lam-min-ratio", "0.01", "--json", "--out", str(out_csv)]) == 0
    out = _strict(capsys.readouterr().out)
    assert {"lams", "coefs", "objectives", "supports", "seconds"} <= set(out)
    problem = load_problem(EXAMPLE)
    lams, coefs = np.array(out["lams"]), np.array(out["coefs"])
    assert lams.shape == (6,) and coefs.shape == (6, problem.n_features)
    assert lams[-1] == pytest.approx(0.01 * lams[0], rel=1e-12)
    assert len(out["seconds"]) == 6 and all(s >= 0 for s in out["seconds"])
    assert out["supports"][0] == []  # the default grid starts where the solution is zero
    for k, lam in enumerate(lams):
        norms = problem.groups.norms(coefs[k])
        assert out["supports"][k] == np.flatnonzero(norms).tolist()
        pen = lam * np.sum(norms ** (2 / depth))
        assert out["objectives"][k] == pytest.approx(problem.value(coefs[k]) + pen, rel=1e-12)
    if depth == 2:  # convex: every path point equals a cold single solve
        w = solve(problem, 2, lams[3]).w
        assert np.linalg.norm(coefs[3] - w) <= 1e-6 * np.linalg.norm(w)
    # Tidy CSV: one row per (lam, coefficient), the same numbers as the JSON.
    with out_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["lam_index", "lam", "feature", "group", "coef"]
    assert len(rows) == 6 * problem.n_features
    table = np.zeros_like(coefs)
    for r in rows:
        table[int(r["lam_index"]), int(r["feature"])] = float(r["coef"])
        assert float(r["lam"]) == lams[int(r["lam_index"])]
        assert int(r["group"]) == problem.groups.labels[int(r["feature"])]
    np.testing.assert_array_equal(table, coefs)


def test_path_explicit_lams_and_text_summary(capsys):
    assert main(["path", str(EXAMPLE), "--depth", "2", "--lams", "0.01,0.1", "--json"]) == 0
    assert _strict(capsys.readouterr().out)["lams"] == [0.1, 0.01]
    assert main(["path", str(EXAMPLE), "--depth", "3", "--lams", "0.05", "--method", "gated"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("dgating path: D=3") and "0.05" in text


def test_path_not_converged_exits_1(capsys, monkeypatch):
    real = dgating.paths.solve_path

    def capped(*args, **kwargs):
        return real(*args, **{**kwargs, "max_iter": 1})

    monkeypatch.setattr(dgating.paths, "solve_path", capped)
    assert main(["path", str(EXAMPLE), "--depth", "2", "--lams", "0.01", "--json"]) == 1
    captured = capsys.readouterr()
    assert _strict(captured.out)["lams"] == [0.01]
    assert len(captured.err.strip().splitlines()) == 1 and "did not reach" in captured.err


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        (["--lams", "0.1,x"], "--lams"),
        (["--lams", "-1"], "--lams"),
        (["--lam-min-ratio", "1.5"], "--lam-min-ratio"),
        (["--n-lams", "0"], "--n-lams"),
        (["--method", "newton"], "--method"),
        (["--loss", "hinge"], "--loss"),
        (["--out", "/no/such/folder/p.csv"], "--out"),
    ],
)
def test_path_input_errors_are_one_line_exit_2(capsys, extra, name):
    assert main(["path", str(EXAMPLE), "--depth", "2", *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and name in err
    assert "got" in err or "Valid" in err  # what was received, or the valid choices
    assert "Traceback" not in err


def test_path_bad_depth_and_missing_file(capsys, tmp_path):
    assert main(["path", str(EXAMPLE), "--depth", "1"]) == 2
    assert "depth" in capsys.readouterr().err
    assert main(["path", str(tmp_path / "none.npz"), "--depth", "2"]) == 2
    assert "DATA" in capsys.readouterr().err
