r"""The self-contained HTML report of ``dgating reproduce`` and its tidy tables.

Everything shown is read from this run's step results and figure data: no number is typed in here.
Figures are embedded as base64 PNG and the style sheet is inline, so the file opens offline.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

from .._io import write_atomic

__all__ = [
    "collect_checks",
    "software_versions",
    "texify",
    "tidy_columns",
    "write_report",
    "write_tables",
]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-family:monospace}
.pass{color:#007a4d;font-weight:600}.fail{color:#c0392b;font-weight:700}
.na{color:#777}.claim{background:#f7f9fc;border-left:3px solid #0072B2;padding:.4em .8em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
code,pre{background:#f5f5f5;font-size:.85em}pre{padding:.5em;overflow-x:auto}
.summary span{display:inline-block;margin-right:1.5em}
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
    if isinstance(x, bool) or x is None:
        return html.escape(str(x))
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if x != x:
            return "nan"
        return f"{x:.6g}"
    return html.escape(str(x))


def _table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p class='na'>(no rows)</p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if c in ("passed", "ok") and (v is None or isinstance(v, bool)):
                cls, txt = (
                    ("na", "—") if v is None else (("pass", "pass") if v else ("fail", "FAIL"))
                )
                cells.append(f"<td class='{cls}'>{txt}</td>")
            elif isinstance(v, int | float) and not isinstance(v, bool):
                cells.append(f"<td class='num'>{_fmt(v)}</td>")
            else:
                cells.append(f"<td>{_fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _figure_ok(fig: Any) -> bool:
    return not isinstance(fig, tuple)


def _theory_rows(records, figures) -> list[dict]:
    """Summary rows of every figure (and of the figure-backed steps), labelled by figure."""
    rows, seen = [], set()
    for fig in figures:
        if not _figure_ok(fig):
            continue
        from .registry import FIGURES

        spec = FIGURES[fig.name]
        if spec.summary is None or fig.name in seen:
            continue
        seen.add(fig.name)
        for row in spec.summary(fig.data):
            rows.append({"figure": spec.label, **row})
    return rows


def _with_deviation(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        ratio = r.get("ratio")
        dev = abs(ratio - 1.0) if isinstance(ratio, float) and ratio == ratio else None
        out.append({**r, "|ratio - 1|": "" if dev is None else f"{dev:.1e}"})
    return out


def _verify_rows(records) -> list[dict]:
    for rec in records:
        if rec.name == "verify" and rec.status == "ok":
            return rec.result.get("rows", [])
    return []


def _verify_name(row: dict, kind: str) -> str:
    name = f"{row.get('problem', '?')} D={row.get('depth', '?')}: {row.get('name', '?')}"
    return name + (f" ({kind}, expected {row.get('expect')})" if kind == "control" else "")


def collect_checks(records, figures) -> list[dict]:
    """Every pass/fail check of the run: derivation steps, proofs_check rows, figure checks."""
    checks = []
    for rec in records:
        if rec.name == "derive" and rec.status == "ok":
            for st in rec.result.get("steps", []):
                checks.append(
                    {
                        "source": "derive",
                        "name": f"D={st['depth']}: {st['name']}",
                        "passed": bool(st["holds"]),
                        "detail": st.get("residual", ""),
                    }
                )
        if rec.status != "ok":
            checks.append(
                {
                    "source": rec.name,
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
                "name": _verify_name(row, kind),
                "passed": bool(row.get("ok", row.get("passed"))),
                "detail": f"value {_fmt(row.get('value'))}, tol {_fmt(row.get('tol'))}, "
                f"margin {_fmt(row.get('margin'))}",
            }
        )
    for row in _theory_rows(records, figures):
        if row.get("passed") is not None:
            checks.append(
                {
                    "source": row["figure"],
                    "name": f"{row['quantity']} ({row['setting']})",
                    "passed": bool(row["passed"]),
                    "detail": f"theory {row['theory']:.6g}, measured {row['measured']:.6g}",
                }
            )
    for fig in figures:
        if not _figure_ok(fig):
            spec, err = fig
            checks.append(
                {
                    "source": spec.label,
                    "name": f"figure {spec.name} rendered",
                    "passed": False,
                    "detail": err,
                }
            )
    return checks


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
    for name, rows in (
        ("theory_vs_measured", _theory_rows(records, figures)),
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


def _derivation_table(records) -> str:
    for rec in records:
        if rec.name == "derive" and rec.status == "ok":
            rows = []
            for d in rec.result["derivations"]:
                rows.append(
                    {
                        "D": d["depth"],
                        "effective penalty": d.get("effective_penalty"),
                        "imbalance rate": d.get("imbalance_rate"),
                        "Δ(t)": d.get("imbalance_solution"),
                        "gap rates": ", ".join(
                            f"{k}: {v}" for k, v in d.get("gap_rates", {}).items()
                        ),
                        "gap bound C_D": d.get("gap_bound_constant"),
                        "SGD contraction": d.get("sgd_contraction"),
                        "conservation laws": d.get("number_of_conservation_laws"),
                        "identities checked": d.get("identities_checked"),
                        "all hold": d.get("ok"),
                    }
                )
            return _table(rows)
    return "<p class='fail'>derivation step did not run</p>"


def write_report(
    out: Path,
    records,
    figures,
    checks,
    *,
    quick: bool,
    seconds: float,
    argv: list[str] | None = None,
) -> Path:
    """Write ``<out>/report.html`` and return its path."""
    from .. import __version__
    from .registry import FIGURES, config_to_dict

    n_fail = sum(1 for c in checks if not c["passed"])
    status = (
        "<span class='pass'>all checks passed</span>"
        if n_fail == 0
        else f"<span class='fail'>{n_fail} checks FAILED</span>"
    )
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    cmd = " ".join(["dgating", *(argv or ["reproduce"])])
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>dgating reproduction report</title><style>{_CSS}</style></head><body>",
        "<h1>dgating: reproduction report</h1>",
        "<p>D-Gating structured sparsity (Kolb et al., NeurIPS 2025): theory derived with sympy, "
        "dynamics simulated, correspondence of minima verified numerically.</p>",
        "<p class='summary'>",
        f"<span><b>status</b>: {status} ({len(checks) - n_fail}/{len(checks)})</span>",
        f"<span><b>scale</b>: {'quick' if quick else 'default'}</span>",
        f"<span><b>run time</b>: {seconds:.1f} s</span>",
        f"<span><b>generated</b>: {now}</span>",
        f"<span><b>dgating</b> {html.escape(__version__)}</span></p>",
        f"<p>Command: <code>{html.escape(cmd)}</code></p>",
    ]
    # contents
    parts.append(
        "<h2>Contents</h2><ol><li><a href='#theory'>Theory against measurement</a></li>"
        "<li><a href='#checks'>Checks</a></li><li><a href='#derivations'>Derivations"
        "</a></li><li><a href='#figures'>Figures</a></li><li><a href='#run'>Run: steps, "
        "configurations, seeds, software</a></li></ol>"
    )
    # theory vs measured
    parts.append("<h2 id='theory'>Theory against measurement</h2>")
    parts.append(
        "<p>Each row puts a value derived by <code>dgating.theory</code> (or a bound) "
        "beside the value measured in this run; ratio = measured / theory.</p>"
    )
    parts.append(
        _table(
            _with_deviation(_theory_rows(records, figures)),
            [
                "figure",
                "quantity",
                "setting",
                "theory",
                "measured",
                "ratio",
                "|ratio - 1|",
                "passed",
                "note",
            ],
        )
    )
    # checks
    parts.append("<h2 id='checks'>Checks</h2>")
    by_source: dict[str, list[dict]] = {}
    for c in checks:
        by_source.setdefault(c["source"], []).append(c)
    parts.append(
        _table(
            [
                {
                    "source": k,
                    "checks": len(v),
                    "passed": all(c["passed"] for c in v),
                    "failed": sum(not c["passed"] for c in v),
                }
                for k, v in by_source.items()
            ]
        )
    )
    verify = _verify_rows(records)
    if verify:
        parts.append(
            "<h3>Numerical verification (dgating.proofs_check)</h3>"
            "<p>Checks at the minimisers found by both routes, and negative controls "
            "(points known not to be minimisers) that the checks must reject; "
            "<i>ok</i> means the outcome is the expected one.</p>"
        )
        per: dict[tuple, dict] = {}
        for r in verify:
            key = (r.get("problem"), r.get("depth"), r.get("kind", "check"))
            agg = per.setdefault(
                key,
                {
                    "problem": key[0],
                    "depth": key[1],
                    "kind": key[2],
                    "lam": r.get("lam"),
                    "rows": 0,
                    "passed": True,
                },
            )
            agg["rows"] += 1
            agg["passed"] = agg["passed"] and bool(r.get("ok", r.get("passed")))
        parts.append(_table(list(per.values())))
        columns = [
            "problem",
            "depth",
            "lam",
            "kind",
            "name",
            "expect",
            "passed",
            "ok",
            "value",
            "tol",
            "margin",
        ]
        parts.append(
            "<details><summary>Every verification row</summary>"
            + _table(verify, columns)
            + "</details>"
        )
        runs = next((r.result.get("runs", []) for r in records if r.name == "verify"), [])
        if runs:
            parts.append(
                "<details><summary>Solver runs (both routes, per problem and depth)"
                "</summary>" + _table(runs) + "</details>"
            )
    failed = [c for c in checks if not c["passed"]]
    if failed:
        parts.append("<h3>Failed checks</h3>" + _table(failed))
    parts.append("<details><summary>All checks</summary>" + _table(checks) + "</details>")
    # derivations
    parts.append("<h2 id='derivations'>Derivations (dgating.theory)</h2>")
    parts.append(_derivation_table(records))
    # figures
    parts.append("<h2 id='figures'>Figures</h2>")
    for fig in figures:
        if not _figure_ok(fig):
            spec, err = fig
            parts.append(
                f"<h3>{spec.label}: {html.escape(spec.title)}</h3>"
                f"<p class='fail'>not rendered: {html.escape(err)}</p>"
            )
            continue
        spec = FIGURES[fig.name]
        png = base64.b64encode(fig.png.read_bytes()).decode("ascii")
        cfg = spec.quick_config if quick else spec.config
        parts.append(
            f"<h3 id='{spec.name}'>{spec.label}: {html.escape(spec.title)}</h3>"
            f"<p class='claim'>{texify(spec.claim)}</p>"
            f"<figure><img alt='{html.escape(spec.title)}' src='data:image/png;base64,{png}'>"
            f"</figure><p>Files: <a href='figures/{fig.pdf.name}'>{fig.pdf.name}</a> (vector), "
            f"<a href='figures/{fig.png.name}'>{fig.png.name}</a>, data "
            f"<code>data/{fig.data_path.name}</code> ({'cached' if fig.cached else 'computed'} "
            f"in {fig.seconds:.2f} s).</p>"
            f"<details><summary>configuration</summary><pre>"
            f"{html.escape(json.dumps(config_to_dict(cfg), indent=1))}</pre></details>"
        )
    # run
    parts.append("<h2 id='run'>Run</h2><h3>Steps</h3>")
    parts.append(
        _table(
            [
                {
                    "step": r.name,
                    "description": r.description,
                    "status": r.status,
                    "cached": r.cached,
                    "seconds": r.seconds,
                    "configuration": json.dumps(r.config),
                }
                for r in records
            ]
            + [
                {
                    "step": f"figure {f.name}",
                    "description": FIGURES[f.name].title,
                    "status": "ok",
                    "cached": f.cached,
                    "seconds": f.seconds,
                    "configuration": json.dumps(
                        config_to_dict(
                            FIGURES[f.name].quick_config if quick else FIGURES[f.name].config
                        )
                    ),
                }
                for f in figures
                if _figure_ok(f)
            ]
        )
    )
    seed_rows = []
    for f in figures:
        if not _figure_ok(f):
            continue
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
    parts.append(
        "<h3>Seeds</h3><p>Every random draw uses <code>numpy.random.default_rng(seed)</code> "
        "(or torch seeded likewise) with these seeds (<code>seeds = n</code> means 0..n-1; a "
        "list means those seeds).</p>" + _table(seed_rows)
    )
    parts.append("<h3>Software</h3>")
    parts.append(_table([{"package": k, "version": v} for k, v in software_versions().items()]))
    files = sorted(p.name for p in (out / "tables").glob("*") if p.is_file())
    links = ", ".join(f"<a href='tables/{f}'>{html.escape(f)}</a>" for f in files)
    parts.append(
        f"<h3>Files</h3><p>Tidy tables in <code>tables/</code>: {links}; raw figure data in "
        "<code>data/</code>; step results in <code>cache/</code>.</p>"
    )
    parts.append("</body></html>")
    path = out / "report.html"
    return write_atomic(path, "\n".join(parts))
