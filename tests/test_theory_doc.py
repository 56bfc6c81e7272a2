"""docs/theory.md: its labels are used, nothing outside the project is cited, and the one
statement no other test checks ([T-precond-flow]) holds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dgating import GroupedProblem
from dgating.figures._report import section_labels
from dgating.gating import GatedParams
from dgating.objectives import GatedObjective

ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory.md"
LABEL = re.compile(r"\[([CTO]-[a-z0-9-]+)\]")
#: Citations of a note outside the project (spelled in pieces so that this file does not match).
OUTSIDE = ("THEORY" + ".md", "../" + "shared", "THEORY" + " 2.")


def _labels() -> set[str]:
    return set(LABEL.findall(THEORY.read_text(encoding="utf-8")))


def _sources(*folders: str) -> dict[Path, str]:
    return {
        p: p.read_text(encoding="utf-8")
        for folder in folders
        for p in sorted((ROOT / folder).rglob("*.py"))
    }


def test_theory_document_defines_the_labels():
    labels = _labels()
    assert {"T-balance", "T-imbalance-flow", "T-minima", "T-gap", "T-sgd", "T-prox"} <= labels
    text = THEORY.read_text(encoding="utf-8")
    for label in labels:  # each label has its own heading (or is the conventions table)
        assert re.search(rf"^#+ \[{re.escape(label)}\]", text, re.M), label


def test_every_label_is_used_by_the_package_or_its_tests():
    used = set()
    for text in _sources("src", "tests").values():
        used |= set(LABEL.findall(text))
    unused = _labels() - used
    assert not unused, f"labels of docs/theory.md cited nowhere in src/ or tests/: {unused}"
    # the converse: every label cited in the code exists in the document
    dangling = used - _labels()
    assert not dangling, f"labels cited in the code but missing from docs/theory.md: {dangling}"


def test_nothing_outside_the_project_is_cited():
    found = [
        f"{p.relative_to(ROOT)}: {needle}"
        for p, text in _sources("src").items()
        for needle in OUTSIDE
        if needle in text
    ]
    assert not found, found
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not [n for n in OUTSIDE if n in readme]


def test_the_outside_check_catches_an_outside_citation():
    # negative control: the needles do match the citation forms that were rewritten
    old = "balanced (" + "THEORY" + ".md 2.2); see ``../" + "shared/" + "THEORY" + ".md``"
    assert [n for n in OUTSIDE if n in old]


@pytest.mark.parametrize("depth", [2, 3])
def test_every_derivation_section_has_a_label(depth):
    from dgating.theory.derivation import derive

    for section, _ in derive(depth, 1).sections:
        assert section_labels(section, depth), section


def _problem(rng) -> GroupedProblem:
    X = rng.standard_normal((30, 6))
    y = rng.standard_normal(30)
    return GroupedProblem(X, y, np.array([0, 0, 1, 1, 1, 2]), loss="squared")


def _velocity(obj: GatedObjective, params: GatedParams) -> np.ndarray:
    """dw/dt of the gated gradient flow, by the chain rule (pushforward of -grad L)."""
    grad = obj.grad(params)
    return obj.gating.pushforward(params, GatedParams(-grad.omega, -grad.gates))


def _preconditioned(problem: GroupedProblem, depth: int, lam: float, w: np.ndarray):
    """-||w_j||^(2-2/D) (I + (D-1) u u^T) grad_{w_j} L_w, group by group (docs/theory.md)."""
    g = problem.grad(w)
    out = np.zeros_like(w)
    for j in range(problem.groups.n_groups):
        idx = np.flatnonzero(problem.groups.labels == j)
        wj = w[idx]
        r = np.linalg.norm(wj)
        u = wj / r
        grad_lw = g[idx] + lam * (2.0 / depth) * r ** (2.0 / depth - 2.0) * wj
        pre = np.eye(idx.size) + (depth - 1) * np.outer(u, u)
        out[idx] = -(r ** (2.0 - 2.0 / depth)) * pre @ grad_lw
    return out


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_balanced_flow_is_the_preconditioned_flow_of_Lw(rng, depth):
    # [T-precond-flow]: on the balanced set dw/dt = -||w||^(2-2/D)(I + (D-1)uu^T) grad L_w.
    problem, lam = _problem(rng), 0.3
    obj = GatedObjective(problem, depth, lam)
    w = rng.standard_normal(problem.n_features)
    signs = rng.choice([-1.0, 1.0], size=(problem.groups.n_groups, depth - 1))
    balanced = obj.gating.lift(w, signs)
    expected = _preconditioned(problem, depth, lam, w)
    # float64 chain rule against a closed form: agreement to a few ulps of the velocity's size
    np.testing.assert_allclose(_velocity(obj, balanced), expected, rtol=1e-12, atol=1e-12)
    # negative control: the same w from an unbalanced factorisation moves differently
    c = 1.5
    gates = balanced.gates.copy()
    gates[:, 0] *= c
    omega = balanced.omega / problem.groups.expand(np.full(problem.groups.n_groups, c))
    unbalanced = GatedParams(omega, gates)
    np.testing.assert_allclose(obj.gating.collapse(unbalanced), w, rtol=1e-12)
    assert np.max(np.abs(_velocity(obj, unbalanced) - expected)) > 1e-3


def test_every_test_the_document_names_exists():
    text = THEORY.read_text(encoding="utf-8")
    named = set(re.findall(r"(?:::|`)(test_\w+)", text))
    assert len(named) > 40
    defined = set()
    for source in _sources("tests").values():
        defined |= set(re.findall(r"^def (test_\w+)", source, flags=re.M))
    assert not named - defined, named - defined
    for path in set(re.findall(r"`(tests/[\w/]+\.py)", text)):
        assert (ROOT / path).is_file(), path
