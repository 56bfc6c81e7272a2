"""Tests written to kill survivors of the generic mutation run (``tools/mutation/run_mutmut.py``)
over ``dgating.theory`` and ``dgating.proofs_check``: the ``derive --json`` contract key by key,
and the report formats of ``verify``. Expected values are written out by hand from THEORY.md
(2.1: effective penalty and balanced minimisers; 2.2: imbalance rate), not produced by the code.
"""

from __future__ import annotations

import json

import sympy as sp

from dgating.cli import main

KEYS = {
    "depth", "group_size", "parametrization", "weights", "n_params", "effective_penalty",
    "effective_penalty_variable", "effective_penalty_total", "minimisers", "imbalance_rate",
    "imbalance_solution", "conserved_quantities", "independent_conserved_quantities",
    "number_of_conservation_laws", "number_of_independent_laws_found", "laws_complete",
    "lie_algebra", "gap_rates", "overall_gap_rate", "gap_bound_constant", "sgd_contraction",
    "sgd_remainder_over_eta_squared", "sgd_multiplicative", "sgd_step_size_range",
    "identities_checked", "identities_failed", "undecided", "ok",
}  # fmt: skip


def _same(text: str, expr: sp.Expr) -> bool:
    names = {s.name: s for s in expr.free_symbols}
    return sp.simplify(sp.sympify(text, locals=names) - expr) == 0


def test_derive_json_contract_depth_3(capsys):
    assert main(["derive", "--depth", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == KEYS
    assert (out["depth"], out["group_size"], out["parametrization"]) == (3, 1, "dgating")
    assert out["n_params"] == 3 and out["weights"] == ["gamma_1*gamma_2*omega_1"]
    r, lam, t, d0 = sp.symbols("r lam t Delta_0", positive=True)
    s1, s2, w1 = sp.symbols("s_1 s_2 w_1")
    assert _same(out["effective_penalty"], r ** sp.Rational(2, 3))
    assert _same(out["effective_penalty_total"], sp.Abs(w1) ** sp.Rational(2, 3))
    assert out["effective_penalty_variable"].startswith("r = ||w_B||_2 for each block B")
    assert _same(out["minimisers"]["gates"][0], s1 * r ** sp.Rational(1, 3))
    assert _same(out["minimisers"]["gates"][1], s2 * r ** sp.Rational(1, 3))
    assert _same(out["minimisers"]["omega"][0], s1 * s2 * w1 * r ** sp.Rational(-2, 3))
    assert _same(out["imbalance_rate"], 4 * lam / 3)
    assert _same(out["imbalance_solution"], d0 * sp.exp(-4 * lam * t / 3))
    # D - 1 = 2 independent laws omega^2 - gamma_d^2 (THEORY.md 2.2), and their difference.
    assert out["number_of_conservation_laws"] == out["number_of_independent_laws_found"] == 2
    assert out["laws_complete"] is True and len(out["conserved_quantities"]) == 3
    assert out["lie_algebra"]["status"] == "decided" and out["lie_algebra"]["trace_dims"] == [1]
    assert set(out["gap_rates"]) == {"surviving", "vanishing"}
    assert out["identities_checked"] >= 40
    assert out["identities_failed"] == [] and out["undecided"] == [] and out["ok"] is True
    assert out["sgd_multiplicative"] is True


def test_derive_text_summary(capsys):
    assert main(["derive", "--depth", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("dgating derive: dgating, D=2, p=1 (2 parameters)")
    for label in ("effective penalty", "imbalance rate", "conservation laws", "identities"):
        assert f"  {label}" in text
    assert "r**(2/2)" not in text and "r\n" not in text
    assert "4*lam/2" not in text and "2*lam" in text  # 4 lam / D at D = 2
    assert "FAILED" not in text


SECTIONS = (
    "Effective penalty (Lagrange), block size 1",
    "Effective penalty for symbolic D (AM-GM chain)",
    "Conservation (lam = 0) and decay (lam > 0) laws, undefined L0",
    "Imbalance dynamics",
    "Objective gap",
    "Gap rate, surviving groups",
    "Gap rate, vanishing groups",
    "One step of (S)GD",
    "Results",
)


def test_derive_latex_document(tmp_path, capsys):
    path = tmp_path / "d3.tex"
    assert main(["derive", "--depth", "3", "--json", "--latex", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    tex = path.read_text()
    assert tex.startswith("\\documentclass{article}") and tex.rstrip().endswith("\\end{document}")
    assert "\\section*{dgating derive: dgating, $D = 3$, $p = 1$}" in tex
    for title in SECTIONS:
        assert f"\\subsection*{{{title}}}" in tex, title
    # One paragraph per identity, each checked; equalities with a zero residual.
    assert tex.count("\\paragraph{") == out["identities_checked"]
    assert tex.count(") (checked).") == out["identities_checked"]
    assert tex.count("Residual: \\( 0 \\) (checked).") >= out["identities_checked"] - 2
    assert "None" not in tex and "FAILED" not in tex
    assert "\\[ e^{x} \\;>\\; 0 \\]" in tex  # the inequality h'' > 0 keeps its sides
    assert "\\paragraph{Lagrange: mu\\_1 from d/d omega}" in tex  # underscores escaped


def test_derive_block_of_two_weights(capsys):
    # D = 2, blocks of p = 2 weights sharing one gate: the group lasso, r^(2/2) = ||w_B||.
    assert main(["derive", "--depth", "2", "--group-size", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    w1, w2 = sp.symbols("w_1 w_2", real=True)
    assert (out["group_size"], out["n_params"]) == (2, 3)
    total = sp.sympify(out["effective_penalty_total"], locals={"w_1": w1, "w_2": w2})
    assert sp.simplify(total - sp.sqrt(w1**2 + w2**2)) == 0
    assert out["ok"] is True and out["identities_failed"] == []
