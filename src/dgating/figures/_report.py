r"""The self-contained HTML report of ``dgating reproduce`` and its tidy tables.

Everything shown is read from this run's step results and figure data: no number is typed in here.
Figures are embedded as base64 PNG, formulas as inline SVG (:mod:`dgating.figures._math`) and the
style sheet is inline, so the file opens offline. Theory labels such as ``[T-balance]`` refer to
the project's ``docs/theory.md`` (docs/theory.md [C-conventions]).

Every table has one meaning per column. Rows of theory against measurement are sorted by kind
(:func:`row_kind`): *equalities* (theory value, measured value, ratio, tolerance on the ratio),
*bounds* ("bound holds with margin x"), *residuals* (theory value 0: the residual and its
tolerance), *references and baselines* (a solver's result or a baseline method, never called
theory) and *informative* rows (no check).
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._io import write_atomic
from ._math import MathRenderer, sympy_latex

__all__ = [
    "collect_checks",
    "row_kind",
    "row_labels",
    "software_versions",
    "texify",
    "tidy_columns",
    "write_report",
    "write_tables",
]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.5}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-family:monospace;white-space:nowrap}
td.label{white-space:nowrap;font-family:monospace;font-size:.95em}
.pass{color:#007a4d;font-weight:600}.fail{color:#c0392b;font-weight:700}
.na{color:#777}.claim{background:#f7f9fc;border-left:3px solid #0072B2;padding:.4em .8em}
.shows{border-left:3px solid #009E73;padding:.4em .8em;background:#f6fbf8}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#333}
code,pre{background:#f5f5f5;font-size:.85em}pre{padding:.5em;overflow-x:auto}
.summary span{display:inline-block;margin-right:1.5em}
.math{font-size:1.12em}.math svg{display:inline-block;overflow:visible}.math-text{font-style:italic}
details{margin:.4em 0}
"""

_TEX = [
    (r"\lambda", "λ"),
    (r"\omega", "ω"),
    (r"\Omega", "Ω"),
    (r"\gamma", "γ"),
    (r"\Gamma", "Γ"),
    (r"\Delta", "Δ"),
    (r"\delta", "δ"),
    (r"\eta", "η"),
    (r"\phi", "φ"),
    (r"\sum", "Σ"),
    (r"\prod", "Π"),
    (r"\star", "*"),
    (r"\infty", "∞"),
    (r"\le", "≤"),
    (r"\ge", "≥"),
    (r"\ne", "≠"),
    (r"\to", "→"),
    (r"\approx", "≈"),
    (r"\nabla", "∇"),
    (r"\cdot", "·"),
    (r"\|", "‖"),
    (r"\,", " "),
    (r"\ ", " "),
    (r"\quad", "  "),
    (r"\qquad", "  "),
    (r"\frac", ""),
    (r"\tfrac", ""),
    (r"\sqrt", "√"),
    (r"\mathrm", ""),
    (r"\rm", ""),
]


def _frac(m: re.Match) -> str:
    num, den = m.group(1), m.group(2)
    wrap = lambda x: x if re.fullmatch(r"\\?\w+", x) else f"({x})"  # noqa: E731
    return f"{wrap(num)}/{wrap(den)} "


def texify(text: str) -> str:
    r"""Turn reST ``:math:`...``` into readable HTML text (Greek letters, no LaTeX engine).

    Examples
    --------
    >>> texify(r"rate :math:`4\lambda/D`")
    'rate <i>4λ/D</i>'
    >>> texify(r":math:`\dot\Delta = -\frac{4\lambda}{D}\Delta`")
    '<i>dΔ/dt = -(4λ)/D Δ</i>'
    >>> texify(r":math:`\frac{1}{2}\sqrt{c^2 + 4w^2}`")
    '<i>1/2 √(c<sup>2</sup> + 4w<sup>2</sup>)</i>'
    """

    def repl(m: re.Match) -> str:
        s = m.group(1)
        # Structures first (innermost braces only, repeated): fractions, roots, dots.
        for _ in range(3):
            s = re.sub(r"\\t?frac\{([^{}]*)\}\{([^{}]*)\}", _frac, s)
            s = re.sub(r"\\sqrt\{([^{}]*)\}", r"√(\1)", s)
            s = re.sub(r"\\dot\{?(\\?\w+)\}?", r"d\1/dt", s)
        for a, b in _TEX:
            s = s.replace(a, b)
        s = re.sub(r"\^\{([^{}]*)\}", r"<sup>\1</sup>", s)
        s = re.sub(r"_\{([^{}]*)\}", r"<sub>\1</sub>", s)
        s = re.sub(r"\^(\w)", r"<sup>\1</sup>", s)
        s = re.sub(r"_(\w)", r"<sub>\1</sub>", s)
        s = s.replace("{", "").replace("}", "").replace("\\", "")
        return f"<i>{s}</i>"

    text = html.escape(text, quote=False)
    text = re.sub(r":math:`([^`]*)`", repl, text)
    text = re.sub(r":\w+:`~?([^`]*)`", r"<code>\1</code>", text)
    return re.sub(r"``([^`]*)``", r"<code>\1</code>", text)


def software_versions() -> dict[str, str]:
    """Versions of Python, the platform and every library the pipeline uses."""
    from importlib.metadata import PackageNotFoundError, version

    out = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
    }
    for pkg in (
        "dgating",
        "numpy",
        "scipy",
        "sympy",
        "torch",
        "matplotlib",
        "scikit-learn",
        "tqdm",
        "dask",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _fmt(x: Any) -> str:
    r"""A number with meaningful digits (4 significant; scientific outside [1e-3, 1e5)).

    Examples
    --------
    >>> [_fmt(v) for v in (3, 0.0, 2.000000000099, 3.81917e-14, 123456.7, float("nan"), None)]
    ['3', '0', '2', '3.82e\u221214', '1.235e+05', 'n/a', 'n/a']
    """
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a" if x != x else ("∞" if x > 0 else "−∞")
        if x == 0:
            return "0"
        text = f"{x:.4g}" if abs(x) >= 1e-3 else f"{x:.3g}"
        # U+2212 minus: no line break inside "3.82e−14" (a hyphen is a break opportunity)
        return text.replace("-", "\u2212")
    return html.escape(str(x))


def _cell(v: Any) -> str:
    """One ``<td>``: numbers right-aligned without wrapping, verdicts coloured, HTML as given."""
    if isinstance(v, _Html):
        return f"<td>{v}</td>"
    if isinstance(v, _Verdict):
        return f"<td class='{v.css}'>{v.text}</td>"
    if isinstance(v, _Label):
        return f"<td class='label'>{html.escape(str(v))}</td>"
    if isinstance(v, int | float) and not isinstance(v, bool):
        return f"<td class='num'>{_fmt(v)}</td>"
    if v is None:
        return "<td class='na'>n/a</td>"
    return f"<td>{_fmt(v)}</td>"


class _Html(str):
    """Already-escaped HTML for a table cell."""


class _Label(str):
    """Theory labels for a table cell (monospace, no wrap)."""


class _Verdict:
    """pass / FAIL / no check, as a coloured cell."""

    def __init__(self, passed: bool | None) -> None:
        self.css, self.text = (
            ("na", "no check")
            if passed is None
            else (("pass", "pass") if passed else ("fail", "FAIL"))
        )


def _table(rows: list[dict], columns: list[str] | None = None, *, math: dict | None = None) -> str:
    """An HTML table; ``math`` maps a column name to typeset header HTML."""
    if not rows:
        return "<p class='na'>(no rows)</p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    math = math or {}
    head = "".join(f"<th>{math.get(c, html.escape(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure_ok(fig: Any) -> bool:
    return not isinstance(fig, tuple)


# ---------------------------------------------------------------------------------------------
# theory labels (docs/theory.md)
# ---------------------------------------------------------------------------------------------

#: Labels of docs/theory.md that each figure illustrates, and what it shows (reST with maths).
FIGURE_NOTES: dict[str, tuple[str, str]] = {
    "penalty_geometry": (
        "[T-variational] [T-transition]",
        r"On the balanced set the gated penalty equals :math:`\lambda\sum_j\|w_j\|^{2/D}`: its "
        r"level sets have cusps on the axes (the source of sparsity) and are convex only for "
        r":math:`D = 2`. At a fixed non-zero imbalance :math:`c` the penalty seen by :math:`w_j` "
        r"is smooth and ridge-like near 0; for :math:`D = 2` it is "
        r":math:`\frac{\lambda}{2}\sqrt{c^2 + 4\|w_j\|^2}`, which tends to "
        r":math:`\lambda\|w_j\|` as :math:`c \to 0`.",
    ),
    "imbalance_decay": (
        "[T-imbalance-flow]",
        r"Every imbalance :math:`\Delta_{j,d} = \|\omega_j\|^2 - \gamma_{j,d}^2` of the gradient "
        r"flow decays exactly like :math:`e^{-4\lambda t/D}`, whatever the loss: the measured "
        "curves lie on the closed form and their relative deviation stays at the integrator's "
        "tolerance.",
    ),
    "gap": (
        "[T-gap] [T-rate-surviving] [T-rate-vanishing] [T-rate-d2]",
        r"The gap :math:`L - L_w` stays below the a-priori bound "
        r":math:`\lambda\frac{D-1}{D}\sum_{j,d}|\Delta_{j,d}(0)|e^{-4\lambda t/D}` (table rows "
        r"“bound holds with margin x”), but the bound's rate is not the actual one: groups that "
        r"stay non-zero decay at :math:`8\lambda/D`, vanishing groups at :math:`4\lambda/D` for "
        r":math:`D \ge 3` and at :math:`2\lambda + 2\|g_j^\star\|` for :math:`D = 2`.",
    ),
    "group_norms": (
        "[T-transition] [T-zero-groups]",
        "Started dense and unbalanced, the flow first keeps every group non-zero (the ridge-like "
        "regime), then the groups outside the support shrink geometrically and never reach "
        "exact zero. The support at the end of the flow is compared with the solver's support "
        "(a reference value, not a theory value).",
    ),
    "subgradient": (
        "[T-zero-groups] [T-prox] [T-precond-flow]",
        r"From one dense start, the subgradient method on :math:`L_w` stalls with the "
        "off-support groups oscillating around 0, proximal gradient reaches exact zeros and the "
        r"gated flow shrinks them geometrically. The rows give the final suboptimality "
        r":math:`L_w - L_w^\star` (:math:`L_w^\star`: the best value reached by a converged "
        "proximal solve and the three methods), expected to be 0 for the convergent methods; a "
        "ratio to 0 is not defined.",
    ),
    "paths": (
        "[T-minima]",
        r"Along a grid of :math:`\lambda` the gated route (L-BFGS on :math:`L`) and the proximal "
        r"route on :math:`L_w` trace the same group-norm paths :math:`\|w_j\|(\lambda)`: the "
        "correspondence of minima, made visible.",
    ),
    "correspondence": (
        "[T-minima] [T-stationarity]",
        r"From the same random starts both routes end at certified local minimisers of "
        r":math:`L_w` (first order, zero groups, reduced Hessian). For the convex "
        r":math:`D = 2` they agree; for :math:`D \ge 3` different local minima are possible "
        "(an informative row, not a check).",
    ),
    "sgd": (
        "[T-sgd] [O-sgd-steady-state]",
        r"The exact one-step recursion of the imbalance under (S)GD holds to round-off; scalar "
        r"vanishing groups contract by :math:`(1 - 2\eta\lambda/D)^2` per step; vector groups "
        r"settle at an imbalance of order :math:`\eta` (measured log-log slope close to 1).",
    ),
    "rates": (
        "[T-imbalance-flow] [T-rate-surviving] [T-rate-vanishing] [T-rate-d2] [O-gap-rate]",
        r"Over the sweep of :math:`(D, \lambda,` seed :math:`)` the measured rates divided by the "
        "derived ones are 1: the imbalance rate to integration accuracy, the gap rates of "
        "surviving and vanishing groups to the accuracy of an asymptotic fit. The worst "
        "configuration of each rate is listed; only where it misses the median check's "
        "tolerance is its fit window called pre-asymptotic.",
    ),
    "nn_tradeoff": (
        "[C-conventions] [T-zero-groups]",
        r"Small networks trained with plain SGD and coupled weight decay :math:`2\lambda/D` "
        "lose whole groups. The accuracy at a given sparsity is compared with baselines "
        "(subgradient SGD, proximal SGD and magnitude pruning at matched sparsity): a "
        "measurement of one configuration, not a theorem; baseline values are labelled as such.",
    ),
}

#: Derivation sections (by title prefix) and the labels they derive.
SECTION_LABELS: tuple[tuple[str, str], ...] = (
    ("Effective penalty", "[T-variational]"),
    ("Conservation", "[T-conservation] [T-conservation-laws]"),
    ("Imbalance dynamics", "[T-balance] [T-imbalance-flow]"),
    ("Objective gap", "[T-gap]"),
    ("Gap rate, surviving", "[T-rate-surviving]"),
    ("Gap rate, vanishing", "[T-rate-vanishing]"),
    ("One step of (S)GD", "[T-sgd]"),
    ("(S)GD: scalar groups at their limits", "[T-sgd]"),
)

#: ``dgating verify`` check names (after the ``a.``/``b.`` prefix) and their labels.
CHECK_LABELS: dict[str, str] = {
    "balanced": "[T-balance]",
    "L_gradient": "[T-minima]",
    "L_hessian": "[T-minima]",
    "L_perturbation": "[T-minima]",
    "Lw_stationarity": "[T-minima] [T-stationarity]",
    "Lw_hessian": "[T-minima] [T-stationarity]",
    "Lw_perturbation": "[T-minima] [T-stationarity]",
    "Lw_zero_groups": "[T-zero-groups] [T-stationarity]",
    "certified": "[T-minima]",
    "unbalanced": "[T-variational] [T-gap]",
}


def section_labels(section: str, depth: int | None = None) -> str:
    """Labels of a derivation section (``""`` if unknown).

    Examples
    --------
    >>> section_labels("Gap rate, vanishing groups", depth=2)
    '[T-rate-d2]'
    >>> section_labels("Objective gap")
    '[T-gap]'
    """
    for prefix, labels in SECTION_LABELS:
        if section.startswith(prefix):
            return "[T-rate-d2]" if labels == "[T-rate-vanishing]" and depth == 2 else labels
    return ""


def check_labels(name: str) -> str:
    """Labels of a ``dgating verify`` row (``"a.Lw_zero_groups"``, ``"values.balanced"``...)."""
    key = name.rsplit(".", 1)[-1]
    if name.startswith("values.") and key == "balanced":
        return "[T-variational] [T-gap]"
    return CHECK_LABELS.get(key, "")


def row_labels(figure: str, row: dict) -> str:
    """Labels of one theory-against-measurement row of figure ``figure`` (a registry name).

    Examples
    --------
    >>> row_labels("gap", {"quantity": "gap rate, vanishing groups", "setting": "D=2, lam=0.5"})
    '[T-rate-d2]'
    >>> row_labels("rates", {"quantity": "sweep: imbalance rate, worst configuration"})
    '[T-imbalance-flow] [O-gap-rate]'
    """
    q = str(row.get("quantity", "")).lower()
    d2 = "D=2" in str(row.get("setting", ""))
    rules = (
        ("steady", "[O-sgd-steady-state]"),
        ("sgd", "[T-sgd]"),
        ("imbalance", "[T-imbalance-flow]"),
        ("bound", "[T-gap]"),
        ("support groups", "[T-rate-surviving]"),
        ("surviving", "[T-rate-surviving]"),
        ("vanishing", "[T-rate-d2]" if d2 else "[T-rate-vanishing]"),
        ("certified", "[T-minima] [T-stationarity]"),
        ("same minimiser", "[T-minima]"),
        ("support size", "[T-zero-groups]"),
        ("l_w - l_w*", "[T-zero-groups] [T-prox]"),
    )
    labels = next((lab for key, lab in rules if key in q), None)
    if labels is None:
        labels = FIGURE_NOTES.get(figure, ("", ""))[0]
    if "worst configuration" in q:
        labels += " [O-gap-rate]"
    return labels


def row_kind(row: dict) -> str:
    """What a theory-against-measurement row compares.

    ``"reference"``: the reference value is a solver result or a baseline (the row's note says
    so: ``"baseline"`` or ``"theory column: ..."``); ``"info"``: no check; ``"residual"``: the
    theory value is 0 and the measured residual is checked; ``"bound"``: a one-sided check
    (``measured <= theory``); ``"equality"``: ``|measured/theory - 1| <= tol``. An explicit
    ``kind`` key wins.

    Examples
    --------
    >>> from dgating.figures.registry import summary_row
    >>> row_kind(summary_row("gap / bound", "D=3", 1.0, 0.2, upper=True))
    'bound'
    >>> row_kind(summary_row("rate", "D=3", 2.0, 2.0, tol=0.1))
    'equality'
    """
    if row.get("kind"):
        return str(row["kind"])
    note = str(row.get("note", "")).lower()
    if "baseline" in note or note.startswith("theory column"):
        return "reference"
    if row.get("passed") is None:
        return "info"
    if row.get("theory") == 0:
        return "residual"
    if row.get("tol") is None:
        return "bound"
    return "equality"


def _theory_rows(records, figures) -> list[dict]:
    """Summary rows of every figure, with the figure label, the row kind and theory labels."""
    from .registry import FIGURES

    rows, seen = [], set()
    for fig in figures:
        if not _figure_ok(fig) or fig.name in seen:
            continue
        spec = FIGURES[fig.name]
        if spec.summary is None:
            continue
        seen.add(fig.name)
        for row in spec.summary(fig.data):
            rows.append(
                {
                    "figure": spec.label,
                    **row,
                    "kind": row_kind(row),
                    "labels": row_labels(fig.name, row),
                    "figure_name": fig.name,
                }
            )
    return rows


def _median_tolerances(rows: list[dict]) -> dict[tuple[str, str], float]:
    """Tolerance of each checked rate, keyed by (figure, quantity before its last comma)."""
    return {
        (r["figure"], str(r["quantity"]).rsplit(",", 1)[0]): float(r["tol"])
        for r in rows
        if r["kind"] == "equality" and r.get("tol") is not None
    }


def _info_note(row: dict, tolerances: dict) -> str:
    """The note of an informative row; "pre-asymptotic" only where the ratio misses the
    tolerance of the corresponding median check."""
    note = str(row.get("note", ""))
    if "pre-asymptotic" not in note:
        return note
    tol = tolerances.get((row["figure"], str(row["quantity"]).rsplit(",", 1)[0]))
    ratio = row.get("ratio")
    if tol is None or not isinstance(ratio, float) or ratio != ratio:
        return note
    dev = abs(ratio - 1.0)
    if dev <= tol:
        return f"within the median check's tolerance ({_fmt(tol)}): asymptotic"
    return (
        f"|ratio − 1| = {_fmt(dev)} exceeds the median check's tolerance ({_fmt(tol)}): the "
        "fit window was pre-asymptotic (a longer horizon is needed)"
    )


def _bound_result(r: dict) -> str:
    margin = (r["theory"] - r["measured"]) / abs(r["theory"]) if r["theory"] else None
    if r["measured"] <= r["theory"]:
        return f"bound holds with margin {_fmt(margin)}"
    return f"bound violated by {_fmt(None if margin is None else -margin)}"


def _defined_ratio(r: dict, reason: str) -> Any:
    ratio = r.get("ratio")
    ok = isinstance(ratio, float) and ratio == ratio and r["theory"] != 0
    return ratio if ok else f"n/a ({reason})"


#: One table per row kind: (kind, heading and the meaning of its columns, columns, cells).
_KIND_TABLES: tuple[tuple[str, str, list[str], Callable[[dict, dict], dict]], ...] = (
    (
        "equality",
        "<h3>Equalities: derived value against measured value</h3><p>ratio = measured / "
        "theory; the check is |ratio − 1| ≤ tolerance.</p>",
        ["theory", "measured", "ratio", "|ratio − 1|", "tolerance", "verdict", "note"],
        lambda r, _: {"|ratio − 1|": abs(r["ratio"] - 1.0), "tolerance": r["tol"]},
    ),
    (
        "bound",
        "<h3>Bounds: measured value against an upper bound</h3><p>A bound is not an equality: "
        "the check is measured ≤ bound, and the margin is (bound − measured) / bound.</p>",
        ["bound", "measured", "result", "verdict", "note"],
        lambda r, _: {"bound": r["theory"], "result": _bound_result(r)},
    ),
    (
        "residual",
        "<h3>Residuals: exact identities (theory value 0)</h3><p>The measured residual of an "
        "identity that holds exactly; the check is residual ≤ tolerance.</p>",
        ["residual", "tolerance", "verdict", "note"],
        lambda r, _: {"residual": r["measured"], "tolerance": r.get("tol")},
    ),
    (
        "reference",
        "<h3>References and baselines (no check)</h3><p>The reference value is another "
        "method's result (a solver, or a baseline such as magnitude pruning), not a theory "
        "value; ratio = measured / reference.</p>",
        ["measured", "reference value", "reference", "ratio"],
        lambda r, _: {
            "reference value": r["theory"],
            "reference": re.sub(r"^theory column:\s*", "", str(r.get("note", ""))),
            "ratio": _defined_ratio(r, "no reference value"),
        },
    ),
    (
        "info",
        "<h3>Informative measurements (no check)</h3><p>Measured values shown beside the value "
        "theory expects, without a pass/fail verdict.</p>",
        ["expected", "measured", "ratio", "note"],
        lambda r, tolerances: {
            "expected": r["theory"],
            "ratio": _defined_ratio(r, "expected value 0"),
            "note": _info_note(r, tolerances),
        },
    ),
)


def _theory_tables(rows: list[dict]) -> str:
    """One table per row kind, each with one meaning per column."""
    if not rows:
        return "<p class='na'>(no rows)</p>"
    tolerances = _median_tolerances(rows)
    known = {kind for kind, *_ in _KIND_TABLES}
    parts = []
    for kind, intro, columns, cells in _KIND_TABLES:
        selected = [r for r in rows if (r["kind"] if r["kind"] in known else "info") == kind]
        if not selected:
            continue
        table = [
            {
                "figure": r["figure"],
                "labels": _Label(r["labels"]),
                "quantity": r["quantity"],
                "setting": r["setting"],
                "theory": r["theory"],
                "measured": r["measured"],
                "ratio": r["ratio"],
                "verdict": _Verdict(r["passed"]),
                "note": r.get("note", ""),
                **cells(r, tolerances),
            }
            for r in selected
        ]
        parts.append(intro + _table(table, ["figure", "labels", "quantity", "setting", *columns]))
    return "".join(parts)


def _verify_rows(records) -> list[dict]:
    for rec in records:
        if rec.name == "verify" and rec.status == "ok":
            return rec.result.get("rows", [])
    return []


def _verify_name(row: dict, kind: str) -> str:
    name = f"{row.get('problem', '?')} D={row.get('depth', '?')}: {row.get('name', '?')}"
    return name + (f" ({kind}, expected {row.get('expect')})" if kind == "control" else "")


def collect_checks(records, figures) -> list[dict]:
    """Every pass/fail check of the run (derivation steps, proofs_check rows, figure checks),
    each with the docs/theory.md labels it verifies."""
    checks = []
    for rec in records:
        if rec.name == "derive" and rec.status == "ok":
            for st in rec.result.get("steps", []):
                checks.append(
                    {
                        "source": "derive",
                        "labels": section_labels(str(st.get("section", "")), st.get("depth")),
                        "name": f"D={st['depth']}: {st['name']}",
                        "passed": bool(st["holds"]),
                        "detail": f"residual {st.get('residual', '')}",
                    }
                )
        if rec.status != "ok":
            checks.append(
                {
                    "source": rec.name,
                    "labels": "",
                    "name": f"step {rec.name} ran",
                    "passed": False,
                    "detail": rec.status,
                }
            )
    for row in _verify_rows(records):
        # "ok": the outcome is the expected one (negative controls are expected to fail).
        kind = "control" if row.get("kind") == "control" else "check"
        checks.append(
            {
                "source": "verify",
                "labels": check_labels(str(row.get("name", ""))),
                "name": _verify_name(row, kind),
                "passed": bool(row.get("ok", row.get("passed"))),
                "detail": f"value {_fmt(row.get('value'))}, tolerance {_fmt(row.get('tol'))}, "
                f"margin {_fmt(row.get('margin'))}",
            }
        )
    for row in _theory_rows(records, figures):
        if row.get("passed") is not None:
            checks.append(
                {
                    "source": row["figure"],
                    "labels": row["labels"],
                    "name": f"{row['quantity']} ({row['setting']})",
                    "passed": bool(row["passed"]),
                    "detail": f"{row['kind']}: theory {_fmt(row['theory'])}, measured "
                    f"{_fmt(row['measured'])}",
                }
            )
    for fig in figures:
        if not _figure_ok(fig):
            spec, err = fig
            checks.append(
                {
                    "source": spec.label,
                    "labels": "",
                    "name": f"figure {spec.name} rendered",
                    "passed": False,
                    "detail": err,
                }
            )
    return checks


def _checks_table(checks: list[dict]) -> str:
    return _table(
        [
            {**c, "labels": _Label(c.get("labels", "")), "passed": _Verdict(c["passed"])}
            for c in checks
        ],
        ["source", "labels", "name", "passed", "detail"],
    )


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r)) or ["empty"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in r.items()}
        )
    write_atomic(path, buf.getvalue())


def tidy_columns(data: dict) -> dict:
    """The tidy part of a figure's data: the ``row_*`` columns if present (prefix removed), else
    all arrays if every array is 1-d of one common length; ``{}`` otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> sorted(tidy_columns({"row_a": np.ones(3), "grid": np.ones((2, 2))}))
    ['a']
    >>> tidy_columns({"a": np.ones(3), "b": np.ones((2, 2))})
    {}
    """
    import numpy as np

    rows = {k[4:]: v for k, v in data.items() if k.startswith("row_")}
    if rows:
        return rows
    arrays = {k: np.asarray(v) for k, v in data.items() if np.ndim(v) > 0}
    lengths = {v.shape for v in arrays.values()}
    if len(lengths) == 1 and len(next(iter(lengths))) == 1:
        return arrays
    return {}


def write_tables(out: Path, records, figures, checks) -> list[Path]:
    """Tidy CSV/JSON tables in ``<out>/tables``; returns their paths."""
    tables = out / "tables"
    written = []
    for fig in figures:
        if not _figure_ok(fig):
            continue
        cols = tidy_columns(fig.data)
        if cols:
            n = len(next(iter(cols.values())))
            rows = [{k: v[i].item() for k, v in cols.items()} for i in range(n)]
            _write_csv(tables / f"{fig.name}.csv", rows)
            written.append(tables / f"{fig.name}.csv")
    theory = [
        {k: v for k, v in r.items() if k != "figure_name"} for r in _theory_rows(records, figures)
    ]
    for name, rows in (
        ("theory_vs_measured", theory),
        ("checks", checks),
        ("verify", _verify_rows(records)),
    ):
        _write_csv(tables / f"{name}.csv", rows)
        written.append(tables / f"{name}.csv")
    for rec in records:
        if rec.name == "derive" and rec.status == "ok":
            _write_csv(tables / "derivation_steps.csv", rec.result["steps"])
            write_atomic(
                tables / "derivations.json", json.dumps(rec.result["derivations"], indent=1)
            )
            written += [tables / "derivation_steps.csv", tables / "derivations.json"]
    return written


def _sym(m: MathRenderer, expr: Any) -> _Html:
    """A sympy expression (as printed by ``derive --json``) typeset; ``n/a`` if absent."""
    if expr is None or expr == "":
        return _Html("<span class='na'>n/a</span>")
    try:
        return _Html(m.inline(sympy_latex(str(expr))))
    except Exception:  # not a sympy expression (free text): show it as text
        return _Html(html.escape(str(expr)))


def _derivation_tables(records, m: MathRenderer) -> str:
    for rec in records:
        if rec.name != "derive" or rec.status != "ok":
            continue
        rows = []
        for d in rec.result["derivations"]:
            rates = d.get("gap_rates", {}) or {}
            rows.append(
                {
                    "D": d["depth"],
                    "penalty": _sym(m, d.get("effective_penalty")),
                    "rate": _sym(m, d.get("imbalance_rate")),
                    "solution": _sym(m, d.get("imbalance_solution")),
                    "surviving": _sym(m, rates.get("surviving")),
                    "vanishing": _sym(m, rates.get("vanishing")),
                    "C_D": _sym(m, d.get("gap_bound_constant")),
                    "sgd": _sym(m, d.get("sgd_contraction")),
                    "laws": d.get("number_of_conservation_laws"),
                    "identities checked": d.get("identities_checked"),
                    "verdict": _Verdict(d.get("ok")),
                }
            )
        heads = {
            "penalty": "effective penalty of a group, "
            + m.inline(r"r = \|w_j\|")
            + " [T-variational]",
            "rate": "imbalance rate " + m.inline(r"\rho") + " [T-imbalance-flow]",
            "solution": m.inline(r"\Delta_{j,d}(t)") + " [T-imbalance-flow]",
            "surviving": "gap rate, surviving groups [T-rate-surviving]",
            "vanishing": "gap rate, vanishing groups [T-rate-vanishing] [T-rate-d2]",
            "C_D": "bound constant " + m.inline("C_D") + " [T-gap]",
            "sgd": "SGD contraction per step, scalar group [T-sgd]",
            "laws": "conservation laws per group [T-conservation]",
        }
        table = _table(rows, list(rows[0]) if rows else None, math=heads)
        legend = (
            "<p>Symbols: "
            + m.inline(r"\lambda")
            + " regularisation strength, "
            + m.inline("D")
            + " depth, "
            + m.inline(r"\eta")
            + " step size, "
            + m.inline("t")
            + " time, "
            + m.inline(r"\Delta_{j,d}(0)")
            + " initial imbalance; "
            + m.inline(r"\|g_j^\star\|")
            + " is the norm of the loss gradient "
            + m.inline(r"\nabla_{w_j}L_0")
            + " at the limit of a vanishing group (for "
            + m.inline("D = 2")
            + " it must be below "
            + m.inline(r"\lambda")
            + ", and the group with the smallest one sets the rate). The SGD factor is "
            "the contraction of a vanishing scalar group's imbalance per step; for "
            + m.inline(r"D \ge 3")
            + " it is "
            + m.inline(r"(1 - 2\eta\lambda/D)^2")
            + ". Each entry is derived by sympy and checked by the steps below.</p>"
        )
        sections: dict[tuple, dict] = {}
        for st in rec.result.get("steps", []):
            sec = str(st.get("section", ""))
            key = (st["depth"], sec)
            agg = sections.setdefault(
                key,
                {
                    "D": st["depth"],
                    "section": sec,
                    "labels": _Label(section_labels(sec, st["depth"])),
                    "steps": 0,
                    "holds": True,
                },
            )
            agg["steps"] += 1
            agg["holds"] = agg["holds"] and bool(st["holds"])
        sec_rows = [{**r, "holds": _Verdict(r["holds"])} for r in sections.values()]
        return (
            table
            + legend
            + "<h3>Derivation steps by section</h3>"
            + _table(sec_rows, ["D", "section", "labels", "steps", "holds"])
        )
    return "<p class='fail'>derivation step did not run</p>"


def _flatten(row: dict) -> dict:
    """One level of nesting as ``"outer: inner"`` columns."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update({f"{k}: {k2}": v2 for k2, v2 in v.items()})
        else:
            out[k] = v
    return out


def _solver_runs(runs: list[dict]) -> str:
    flat = [_flatten(r) for r in runs]
    return (
        "<p>Per problem and depth, the minimisers of both routes: <i>gated</i> (L-BFGS on the "
        "smooth L, collapsed) and <i>prox</i> (proximal gradient on L_w). <i>objective</i>: "
        "L_w at the returned point; <i>stationarity</i>: relative first-order residual "
        "[T-stationarity]; <i>max_imbalance</i>: largest relative imbalance (n/a for prox, "
        "which has no gates); <i>distance</i>: ‖w_gated − w_prox‖ / max(1, ‖w_prox‖); "
        "<i>seconds</i>: solver time.</p>" + _table(flat)
    )


def _seconds(x: float | None) -> str:
    return "not recorded" if x is None else f"{x:.1f} s"


_NOTATION = (
    (
        r"w_j \in \mathbb{R}^{p_j}",
        "weights of group :math:`j` of :math:`J` (label −1: unpenalised)",
    ),
    (
        r"w_j = \omega_j\,\gamma_{j,1}\cdots\gamma_{j,D-1}",
        r"D-Gating: a vector :math:`\omega_j` (``omega``) times :math:`D - 1` scalar gates "
        r":math:`\gamma_{j,d}` (``gates``, :math:`\Gamma \in \mathbb{R}^{J \times (D-1)}`)",
    ),
    (r"D \geq 2,\ q = 2/D", "depth (``depth``) and the exponent of the group penalty"),
    (r"\lambda", "regularisation strength (``lam``)"),
    (r"L_0", "the loss (squared error, logistic, or a network's loss)"),
    (r"L_w(w) = L_0(w) + \lambda\sum_j\|w_j\|^{2/D}", "the non-smooth objective"),
    (r"L_w^\star", "the smallest value of :math:`L_w` found (figure F5)"),
    (
        r"L(\omega,\Gamma) = L_0(w) + \frac{\lambda}{D}(\|\omega\|^2 + \|\Gamma\|_F^2)",
        "the smooth gated objective",
    ),
    (
        r"\Delta_{j,d} = \|\omega_j\|^2 - \gamma_{j,d}^2",
        r"imbalance; a point is balanced when every :math:`\Delta_{j,d} = 0`",
    ),
    (
        r"g_j = \nabla_{w_j}L_0",
        r"loss gradient of group :math:`j`; :math:`\|g_j^\star\|` its norm at the limit",
    ),
    (
        r"AM_j,\ GM_j",
        r"arithmetic and geometric mean of :math:`\|\omega_j\|^2, \gamma_{j,1}^2, \dots, "
        r"\gamma_{j,D-1}^2`",
    ),
    (r"\eta,\ t,\ T", "step size; time of the gradient flow; its horizon"),
)


def write_report(
    out: Path,
    records,
    figures,
    checks,
    *,
    quick: bool,
    seconds: float,
    argv: list[str] | None = None,
    figure_compute: dict[str, float | None] | None = None,
) -> Path:
    """Write ``<out>/report.html`` and return its path.

    ``seconds`` is this run's wall time; ``figure_compute`` maps a figure name to the time its
    data took when they were computed (in this run or an earlier one; ``None``: not recorded),
    and every step record carries the same as ``compute_seconds``.
    """
    from .. import __version__
    from .registry import FIGURES, config_to_dict

    m = MathRenderer()
    figure_compute = figure_compute or {}
    n_fail = sum(1 for c in checks if not c["passed"])
    status = (
        "<span class='pass'>all checks passed</span>"
        if n_fail == 0
        else f"<span class='fail'>{n_fail} checks FAILED</span>"
    )
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    cmd = " ".join(["dgating", *(argv or ["reproduce"])])
    good = [f for f in figures if _figure_ok(f)]
    # Steps that compute figure data are counted with their figure, once.
    steps = [r for r in records if "figure" not in r.config]
    parts_compute = [r.compute_seconds for r in steps] + [figure_compute.get(f.name) for f in good]
    n_reused = sum(r.cached for r in steps) + sum(f.cached for f in good)
    known = [x for x in parts_compute if x is not None]
    compute_text = f"{sum(known):.1f} s" + (
        f" ({len(parts_compute) - len(known)} results without a recorded time)"
        if len(known) < len(parts_compute)
        else ""
    )
    body = [
        "<h1>dgating: reproduction report</h1>",
        "<p>D-Gating structured sparsity (Kolb et al., NeurIPS 2025): theory derived with sympy, "
        "dynamics simulated, correspondence of minima verified numerically. Labels in square "
        "brackets, such as [T-balance], refer to the statements of <code>docs/theory.md</code>, "
        "the project's theory document (in the source distribution): each states the result, "
        "its derivation or proof, and whether it is proved, derived symbolically, measured or "
        "open.</p>",
        "<p class='summary'>",
        f"<span><b>status</b>: {status} ({len(checks) - n_fail}/{len(checks)})</span>",
        f"<span><b>scale</b>: {'quick' if quick else 'default'}</span>",
        f"<span><b>this run</b>: {seconds:.1f} s ({n_reused} of {len(parts_compute)} "
        "results reused from the cache)</span>",
        f"<span><b>compute time of all results</b>: {compute_text}</span>",
        f"<span><b>generated</b>: {now}</span>",
        f"<span><b>dgating</b> {html.escape(__version__)}, {os.cpu_count()} CPUs</span></p>",
        f"<p>Command: <code>{html.escape(cmd)}</code></p>",
        "<h2>Contents</h2><ol><li><a href='#notation'>Notation</a></li>"
        "<li><a href='#theory'>Theory against measurement</a></li>"
        "<li><a href='#checks'>Checks</a></li><li><a href='#derivations'>Derivations</a></li>"
        "<li><a href='#figures'>Figures</a></li><li><a href='#run'>Run: steps, "
        "configurations, seeds, software</a></li></ol>",
        "<h2 id='notation'>Notation</h2><p>The symbols used below "
        "(docs/theory.md [C-conventions]).</p>",
        _table(
            [
                {"symbol": _Html(m.inline(tex)), "meaning": _Html(m.roles(text))}
                for tex, text in _NOTATION
            ],
            ["symbol", "meaning"],
        ),
        "<h2 id='theory'>Theory against measurement</h2>",
        "<p>Each row puts a value derived by <code>dgating.theory</code> beside the value "
        "measured in this run; the tables differ in what is compared.</p>",
        _theory_tables(_theory_rows(records, figures)),
        "<h2 id='checks'>Checks</h2>",
    ]
    by_source: dict[str, list[dict]] = {}
    for c in checks:
        by_source.setdefault(c["source"], []).append(c)
    body.append(
        _table(
            [
                {
                    "source": k,
                    "checks": len(v),
                    "failed": sum(not c["passed"] for c in v),
                    "verdict": _Verdict(all(c["passed"] for c in v)),
                }
                for k, v in by_source.items()
            ]
        )
    )
    verify = _verify_rows(records)
    if verify:
        body.append(
            "<h3>Numerical verification (dgating.proofs_check)</h3>"
            "<p>Checks at the minimisers found by both routes [T-minima] and negative controls "
            "(points known not to be minimisers) that the checks must reject; a row passes when "
            "its outcome is the expected one.</p>"
        )
        per: dict[tuple, dict] = {}
        for r in verify:
            key = (r.get("problem"), r.get("depth"), r.get("kind", "check"))
            agg = per.setdefault(
                key,
                {
                    "problem": key[0],
                    "D": key[1],
                    "kind": key[2],
                    "λ": r.get("lam"),
                    "rows": 0,
                    "labels": set(),
                    "ok": True,
                },
            )
            agg["rows"] += 1
            agg["labels"].update(check_labels(str(r.get("name", ""))).split())
            agg["ok"] = agg["ok"] and bool(r.get("ok", r.get("passed")))
        body.append(
            _table(
                [
                    {**a, "labels": _Label(" ".join(sorted(a["labels"]))), "ok": _Verdict(a["ok"])}
                    for a in per.values()
                ],
                ["problem", "D", "kind", "λ", "rows", "labels", "ok"],
            )
        )
        rows = [
            {
                **r,
                "labels": _Label(check_labels(str(r.get("name", "")))),
                "check passed": _Verdict(r.get("passed")),
                "as expected": _Verdict(r.get("ok", r.get("passed"))),
            }
            for r in verify
        ]
        body.append(
            "<details><summary>Every verification row</summary>"
            + _table(
                rows,
                [
                    "problem",
                    "depth",
                    "lam",
                    "kind",
                    "name",
                    "labels",
                    "expect",
                    "check passed",
                    "as expected",
                    "value",
                    "tol",
                    "margin",
                ],
            )
            + "</details>"
        )
        runs = next((r.result.get("runs", []) for r in records if r.name == "verify"), [])
        if runs:
            body.append(
                "<details><summary>Solver runs (both routes, per problem and depth)</summary>"
                + _solver_runs(runs)
                + "</details>"
            )
    failed = [c for c in checks if not c["passed"]]
    if failed:
        body.append("<h3>Failed checks</h3>" + _checks_table(failed))
    body.append("<details><summary>All checks</summary>" + _checks_table(checks) + "</details>")
    body.append("<h2 id='derivations'>Derivations (dgating.theory)</h2>")
    body.append(_derivation_tables(records, m))
    body.append("<h2 id='figures'>Figures</h2>")
    for fig in figures:
        if not _figure_ok(fig):
            spec, err = fig
            body.append(
                f"<h3>{spec.label}: {html.escape(spec.title)}</h3>"
                f"<p class='fail'>not rendered: {html.escape(err)}</p>"
            )
            continue
        spec = FIGURES[fig.name]
        png = base64.b64encode(fig.png.read_bytes()).decode("ascii")
        cfg = spec.quick_config if quick else spec.config
        labels, shows = FIGURE_NOTES.get(fig.name, ("", ""))
        t = figure_compute.get(fig.name)
        origin = (
            f"computed in this run ({_seconds(t)})"
            if not fig.cached
            else f"reused from the cache (computing them took {_seconds(t)})"
        )
        body.append(
            f"<h3 id='{spec.name}'>{spec.label}: {html.escape(spec.title)}</h3>"
            + (
                f"<p class='shows'><b>What this shows</b> ({html.escape(labels)}): "
                f"{m.roles(shows)}</p>"
                if shows
                else ""
            )
            + f"<figure><img alt='{html.escape(spec.title)}' src='data:image/png;base64,{png}'>"
            f"<figcaption class='claim'>{m.roles(spec.claim)}</figcaption></figure>"
            f"<p>Files: <a href='figures/{fig.pdf.name}'>{fig.pdf.name}</a> (vector), "
            f"<a href='figures/{fig.png.name}'>{fig.png.name}</a>, data "
            f"<code>data/{fig.data_path.name}</code>, {origin}.</p>"
            f"<details><summary>configuration</summary><pre>"
            f"{html.escape(json.dumps(config_to_dict(cfg), indent=1))}</pre></details>"
        )
    body.append("<h2 id='run'>Run</h2><h3>Steps</h3>")
    body.append(
        "<p><i>this run</i>: wall time of the step in this run (loading a cached result is "
        "fast); <i>compute time</i>: the time the result took when it was computed.</p>"
    )
    step_rows = [
        {
            "step": r.name,
            "description": r.description,
            "status": r.status,
            "result": "reused from cache" if r.cached else "computed",
            "this run (s)": r.seconds,
            "compute time (s)": r.compute_seconds,
            "configuration": _Html(f"<code>{html.escape(json.dumps(r.config))}</code>"),
        }
        for r in records
    ] + [
        {
            "step": f"figure {f.name}",
            "description": FIGURES[f.name].title,
            "status": "ok",
            "result": "reused from cache" if f.cached else "computed",
            "this run (s)": f.seconds,
            "compute time (s)": figure_compute.get(f.name),
            "configuration": _Html(
                "<code>"
                + html.escape(
                    json.dumps(
                        config_to_dict(
                            FIGURES[f.name].quick_config if quick else FIGURES[f.name].config
                        )
                    )
                )
                + "</code>"
            ),
        }
        for f in good
    ]
    body.append(_table(step_rows))
    seed_rows = []
    for f in good:
        spec = FIGURES[f.name]
        cfg = config_to_dict(spec.quick_config if quick else spec.config)
        for k, v in cfg.items():
            if "seed" in k:
                seed_rows.append(
                    {"used by": f"{spec.label} {spec.name}", "key": k, "value": json.dumps(v)}
                )
    seed_rows.append(
        {
            "used by": "tests",
            "key": "DGATING_TEST_SEED",
            "value": os.environ.get("DGATING_TEST_SEED", "0 (default)"),
        }
    )
    body.append(
        "<h3>Seeds</h3><p>Every random draw uses <code>numpy.random.default_rng(seed)</code> "
        "(or torch seeded likewise) with these seeds (<code>seeds = n</code> means 0..n-1; a "
        "list means those seeds).</p>" + _table(seed_rows)
    )
    body.append("<h3>Software</h3>")
    body.append(_table([{"package": k, "version": v} for k, v in software_versions().items()]))
    files = sorted(p.name for p in (out / "tables").glob("*") if p.is_file())
    links = ", ".join(f"<a href='tables/{f}'>{html.escape(f)}</a>" for f in files)
    body.append(
        f"<h3>Files</h3><p>Tidy tables in <code>tables/</code>: {links}; raw figure data in "
        "<code>data/</code>; step results in <code>cache/</code>.</p>"
    )
    page = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>dgating reproduction report</title><style>{_CSS}</style></head><body>",
        m.defs(),  # glyph outlines shared by every formula (all formulas are rendered by now)
        *body,
        "</body></html>",
    ]
    path = out / "report.html"
    return write_atomic(path, "\n".join(page))
