"""`derive` and `dgating derive`: the result object, the JSON contract, LaTeX and exit status."""

from __future__ import annotations

import argparse
import json

import pytest
import sympy as sp

from dgating._validation import InputError
from dgating.theory import derive, r
from dgating.theory._cli import register, run


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dgating")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["derive", *argv])


@pytest.mark.parametrize("depth", range(2, 9))
def test_every_depth_derives_and_all_steps_hold(depth):
    der = derive(depth, 2)
    assert der.ok, [s.name for s in der.failed]
    assert der.number_of_conservation_laws == depth - 1
    assert sp.simplify(der.effective_penalty - r ** sp.Rational(2, depth)) == 0


@pytest.mark.slow
def test_full_grid_derives():
    # speed is measured outside the tests (the closing note quotes the grid's wall time)
    for depth in range(2, 9):
        for p in range(1, 5):
            der = derive(depth, p)
            assert der.ok, (depth, p, [s.name for s in der.failed])


@pytest.mark.parametrize(
    "name, laws",
    [
        ("dgating", lambda D, p: D - 1),
        ("hadamard", lambda D, p: p * (D - 1)),
        ("shared-gates", lambda D, p: D - 1),
    ],
)
def test_json_contract(name, laws, capsys):
    code = run(parse(["--depth", "3", "--group-size", "2", "--parametrization", name, "--json"]))
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"]
    rs = sp.Symbol("r")
    assert sp.simplify(sp.sympify(out["effective_penalty"]) - rs ** sp.Rational(2, 3)) == 0
    assert sp.simplify(sp.sympify(out["imbalance_rate"]) - 4 * sp.Symbol("lam") / 3) == 0
    assert out["number_of_conservation_laws"] == laws(3, 2)
    assert all(isinstance(sp.sympify(q), sp.Expr) for q in out["conserved_quantities"])
    assert set(out["gap_rates"]) == {"surviving", "vanishing"}
    eta, lam = sp.symbols("eta lam")
    assert sp.simplify(sp.sympify(out["sgd_contraction"]) - (1 - 2 * eta * lam / 3) ** 2) == 0


def test_text_output_and_latex_file(tmp_path, capsys):
    path = tmp_path / "derive.tex"
    assert run(parse(["--depth", "2", "--latex", str(path)])) == 0
    text = capsys.readouterr().out
    assert "effective penalty" in text and "conservation laws" in text
    tex = path.read_text()
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    assert "FAILED" not in tex and r"\paragraph" in tex


def test_exit_status_is_one_when_a_step_fails(monkeypatch, capsys):
    import dgating.theory.derivation as derivation
    from dgating.theory.steps import check_identity

    real = derivation.amgm_chain
    broken = real() + (check_identity("a deliberately wrong identity", r**2, r),)
    monkeypatch.setattr(derivation, "amgm_chain", lambda: broken)
    assert run(parse(["--depth", "2"])) == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--depth", "1"], "depth"),
        (["--depth", "2.5"], "depth"),
        (["--depth", "x"], "depth"),
        (["--depth", "3", "--group-size", "0"], "group-size"),
        (["--depth", "3", "--parametrization", "tucker"], "parametrization"),
    ],
)
def test_invalid_input_is_one_input_error(argv, match):
    with pytest.raises(InputError, match=match):
        run(parse(argv))


def test_derivation_is_frozen_and_reports_undecided_cases():
    from dgating.theory import Factor, Parametrization

    der = derive(3, 1)
    with pytest.raises(AttributeError):
        der.group_size = 2  # type: ignore[misc]
    spec = Parametrization(
        "hierarchical",
        (
            Factor("omega", (0, 1), ("omega_1", "omega_2")),
            Factor("gamma", (0, 1), ("gamma_1", "gamma_2")),
            Factor("beta", (0, 0), ("beta",)),
        ),
        ("w_1", "w_2"),
    )
    der = derive(3, parametrization=spec)
    assert der.ok and der.effective_penalty is None and der.gap_rates == {}
    assert der.number_of_conservation_laws == 3
    assert any("effective penalty" in u for u in der.undecided)
    assert json.dumps(der.to_json())
