"""`dgating solve`: the JSON contract, the summary, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dgating import certify, load_problem
from dgating.cli import main

EXAMPLE = Path(__file__).parents[1] / "src" / "dgating" / "data" / "example.npz"
KEYS = {
    "w",
    "objective",
    "support",
    "stationarity",
    "max_imbalance",
    "converged",
    "iterations",
    "seconds",
}


@pytest.mark.parametrize("method", ["gated", "prox"])
@pytest.mark.parametrize("depth", [2, 3])
def test_solve_json_contract(capsys, method, depth):
    assert (
        main(
            [
                "solve",
                str(EXAMPLE),
                "--depth",
                str(depth),
                "--lam",
                "0.1",
                "--method",
                method,
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out)
    problem = load_problem(EXAMPLE)
    w = np.array(out["w"])
    assert w.shape == (problem.n_features,)
    assert out["converged"] and out["stationarity"] <= 1e-8
    assert out["support"] == [int(j) for j in np.flatnonzero(problem.groups.norms(w))]
    assert (out["max_imbalance"] is None) == (method == "prox")
    # The reported objective is L_w at the reported w, and the point is certified independently.
    pen = 0.1 * np.sum(problem.groups.norms(w) ** (2 / depth))
    assert out["objective"] == pytest.approx(problem.value(w) + pen, rel=1e-12)
    assert certify(problem, depth, 0.1, w).passed


def test_solve_summary(capsys):
    assert main(["solve", str(EXAMPLE), "--depth", "4", "--lam", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "objective L_w" in out and "certificate      passed" in out


def test_logistic_loss_via_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6))
    y = np.where(X[:, 0] - X[:, 1] > 0, 1.0, -1.0)
    path = tmp_path / "logit.npz"
    np.savez(path, X=X, y=y, groups=np.array([0, 0, 1, 1, 2, 2]))
    assert (
        main(["solve", str(path), "--depth", "3", "--lam", "0.01", "--loss", "logistic", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["converged"]


BAD = [
    (["--depth", "1", "--lam", "0.1"], "`--depth` must be an integer >= 2; got 1.0"),
    (["--depth", "2.5", "--lam", "0.1"], "`--depth` must be an integer >= 2; got 2.5"),
    (["--depth", "3", "--lam", "-1"], "`--lam` must be a finite number >= 0; got -1.0"),
    (["--depth", "3", "--lam", "nan"], "`--lam` must be a finite number >= 0; got nan"),
    (["--depth", "3", "--lam", "x"], "argument --lam: expected a number; got 'x'"),
    (["--depth", "3", "--lam", "0.1", "--method", "sgd"], "Unknown `--method` 'sgd'"),
    (["--depth", "3", "--lam", "0.1", "--loss", "hinge"], "Unknown `--loss` 'hinge'"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_arguments_one_line_exit_2(capsys, args, message):
    try:
        code = main(["solve", str(EXAMPLE), *args])
    except SystemExit as exc:  # argparse-level errors exit from inside the parser
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"X": np.ones((3, 2)), "y": np.zeros(3), "groups": np.array([0, 2])}, "no gaps"),
        ({"X": np.ones((3, 2)), "y": np.zeros(4), "groups": np.array([0, 1])}, "`y` must have"),
        ({"X": np.full((3, 2), np.nan), "y": np.zeros(3), "groups": np.array([0, 1])}, "finite"),
        ({"X": np.ones((3, 2)), "y": np.zeros(3)}, "without groups"),
    ],
)
def test_bad_data_files(tmp_path, capsys, arrays, message):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    assert main(["solve", str(path), "--depth", "2", "--lam", "0.1"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_console_script_missing_file(tmp_path):
    # The installed entry point, in a fresh process: one stderr line, exit 2, no traceback.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dgating.cli",
            "solve",
            str(tmp_path / "nope.npz"),
            "--depth",
            "2",
            "--lam",
            "0.1",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("dgating solve: error: `DATA` must be an existing")
    assert proc.stderr.count("\n") == 1


def _choices(parser) -> list[str]:
    import argparse

    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


def test_subcommand_table_matches_the_registrations():
    from dgating.cli import SUBCOMMANDS, build_parser

    assert _choices(build_parser()) == list(SUBCOMMANDS)
    for command in SUBCOMMANDS:
        assert command in _choices(build_parser(command))


def test_solve_imports_neither_torch_nor_sympy(tmp_path):
    code = (
        "import sys; from dgating.cli import main; "
        f"main(['solve', {str(EXAMPLE)!r}, '--depth', '3', '--lam', '0.1', '--json']); "
        "print(sorted(m for m in ('torch', 'sympy') if m in sys.modules), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr.strip() == "[]"
