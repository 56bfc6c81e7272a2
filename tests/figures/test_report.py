"""The HTML report and the reproduce pipeline (caching on a toy pipeline; the real one is slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest

from dgating.figures import _reproduce, registry
from dgating.figures._math import MathRenderer
from dgating.figures._report import row_kind, texify
from dgating.figures.registry import FigureSpec, summary_row


def test_texify_turns_math_roles_into_text():
    out = texify(r"rate :math:`4\lambda/D` and ``code`` with <tag>")
    assert out == "rate <i>4λ/D</i> and <code>code</code> with &lt;tag&gt;"
    assert "\\" not in texify(r":math:`\|w_j\|^{2/D}`")


def test_math_is_typeset_offline_as_svg_with_shared_glyphs():
    m = MathRenderer()
    a, b = m.inline(r"\frac{4\lambda}{D}"), m.inline(r"\langle\hat g_j,\omega_j\rangle")
    for out in (a, b):
        assert out.startswith('<span class="math" role="img"') and "<svg" in out
        assert "em;height:" in out  # sized in em: scales with the text
    # every glyph is defined once, in the shared definitions, and only referenced by formulas
    assert "<path id=" not in a + b and a.count("<use") >= 3
    defs = m.defs()
    assert defs.count("<path id=") == len(set(__import__("re").findall(r'id="([^"]+)"', defs)))
    # LaTeX that mathtext lacks is rewritten (\le, \tfrac, \Big) rather than shown raw
    assert "math-text" not in m.inline(r"\tfrac{1}{D}\Big(x \le y\Big)")
    # a formula mathtext cannot parse falls back to text, never to a traceback or raw LaTeX
    fallback = m.inline(r"\unknowncommand{x}")
    assert 'class="math math-text"' in fallback


def test_rows_are_sorted_by_what_they_compare():
    assert row_kind(summary_row("gap / bound", "D=3", 1.0, 0.5, upper=True)) == "bound"
    assert row_kind(summary_row("rate", "D=3", 2.0, 2.1, tol=0.1)) == "equality"
    assert row_kind({**summary_row("residual", "", 0.0, 1e-16), "passed": True}) == "residual"
    assert row_kind(summary_row("acc", "", 0.9, 0.8, "magnitude pruning (baseline)")) == (
        "reference"
    )
    assert row_kind(summary_row("final L_w - L_w*", "D=2", 0.0, 1e-6)) == "info"
    # negative control: a bound is not read as an equality, nor an equality as a bound
    assert row_kind(summary_row("rate", "D=3", 2.0, 1.0, tol=0.1)) != "bound"


@dataclass(frozen=True)
class _Cfg:
    n: int = 4
    seed: int = 7


def _toy_pipeline(monkeypatch, calls: dict, fail: bool = False):
    def compute(cfg):
        calls["figure"] = calls.get("figure", 0) + 1
        return {"x": np.linspace(0, 1, cfg.n)}

    def plot(data, ax=None):
        from dgating.figures._style import axes_or_new

        fig, (a,) = axes_or_new(ax, 1)
        a.plot(data["x"])
        return fig

    def summary(data):
        return [
            summary_row("toy rate", "D=2", 1.0, float(data["x"][-1]), tol=1e-12),
            summary_row("toy bound", "D=2", 1.0, 2.0, upper=True),
        ]

    spec = FigureSpec(
        "toy",
        compute,
        plot,
        _Cfg(2),
        _Cfg(),
        "F1",
        "Toy figure",
        r"Claims :math:`\lambda > 0`.",
        summary,
    )

    def step(config):
        calls["step"] = calls.get("step", 0) + 1
        if fail:
            raise RuntimeError("boom")
        return {
            "derivations": [],
            "steps": [
                {"depth": 2, "section": "s", "name": "identity", "holds": True, "residual": "0"}
            ],
        }

    figures = {"toy": spec}
    monkeypatch.setattr(registry, "FIGURES", figures)
    monkeypatch.setattr(_reproduce, "FIGURES", figures)
    monkeypatch.setattr(
        _reproduce,
        "STEPS",
        (
            _reproduce.Step("derive", "toy derivation", step, {"depths": [2]}, {"depths": [2]}),
            _reproduce.Step("simulate", "toy figure data", figure="toy"),
        ),
    )


def test_reproduce_caches_every_step_and_figure(monkeypatch, tmp_path):
    calls: dict = {}
    _toy_pipeline(monkeypatch, calls)
    lines: list[str] = []
    first = _reproduce.reproduce(tmp_path, log=lines.append)
    assert calls == {"step": 1, "figure": 1}
    # One derivation step and two summary rows; the toy bound (2 > 1) fails by construction.
    assert (first.n_checks, first.n_failed, first.passed) == (3, 1, False)
    second = _reproduce.reproduce(tmp_path, log=lines.append)
    assert calls == {"step": 1, "figure": 1}  # everything reused
    assert all(r.cached for r in second.steps) and all(f.cached for f in second.figures)
    lines.clear()
    forced = _reproduce.reproduce(tmp_path, force=True, log=lines.append)
    assert calls == {"step": 2, "figure": 2}  # the step-computed figure data is not redone
    # --force recomputes everything and says so: nothing is logged or reported as cached
    assert lines and not any("cached" in ln for ln in lines[:-1]), lines
    assert not any(f.cached for f in forced.figures)

    html = first.report.read_text()
    assert "data:image/png;base64," in html and 'aria-label="\\lambda &gt; 0"' in html
    assert "bound violated by 1" in html  # the failing toy bound, said as a bound
    assert "reused from the cache" in second.report.read_text()
    assert "compute time" in second.report.read_text()
    assert second.steps[0].compute_seconds == first.steps[0].compute_seconds  # kept in the cache
    assert "http://" not in html and "https://" not in html  # opens offline
    assert "THEORY" not in html and "../shared" not in html  # cites docs/theory.md only
    assert "[T-" in html and "docs/theory.md" in html
    assert "<td>seed</td><td>7</td>" in html  # seeds from the configurations
    rows = (tmp_path / "tables" / "theory_vs_measured.csv").read_text().splitlines()
    assert rows[0].startswith("figure,quantity,setting,theory,measured,ratio")
    assert rows[0].endswith("kind,labels")
    assert len(rows) == 3
    checks = (tmp_path / "tables" / "checks.csv").read_text()
    assert "toy bound" in checks and "False" in checks  # the failing bound is recorded


def test_failing_step_is_reported_not_raised(monkeypatch, tmp_path):
    calls: dict = {}
    _toy_pipeline(monkeypatch, calls, fail=True)
    res = _reproduce.reproduce(tmp_path, log=lambda s: None)
    assert not res.passed
    assert res.steps[0].status.startswith("error: RuntimeError: boom")
    assert "boom" in res.report.read_text()
    assert not list((tmp_path / "cache").glob("derive-*.json"))  # failures are not cached


@pytest.mark.slow
def test_reproduce_quick_end_to_end_reuses_cache(tmp_path):
    cmd = [sys.executable, "-m", "dgating.cli", "reproduce", "--quick", "--out", str(tmp_path)]
    t0 = time.perf_counter()
    first = subprocess.run(cmd, capture_output=True, text=True)
    t1 = time.perf_counter()
    second = subprocess.run(cmd, capture_output=True, text=True)
    t2 = time.perf_counter()
    assert first.returncode in (0, 1), first.stderr
    assert (tmp_path / "report.html").is_file()
    assert "computed" in first.stderr and "computed" not in second.stderr
    assert t2 - t1 < 0.5 * (t1 - t0)
    assert t1 - t0 < 120
    data = json.loads(json.dumps(sorted(p.name for p in (tmp_path / "figures").glob("*.pdf"))))
    assert len(data) == 10
