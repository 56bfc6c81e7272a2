"""The HTML report in headless Chromium: no console errors, every image decoded, every maths
element rendered, screenshots kept (their folder is printed at the end of the test run).

Skipped, with the reason, when Chromium is not installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .browser import SCREENSHOTS, find_chromium, inspect_page

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="browser check skipped: no `chromium` on PATH (Debian: apt-get install -y chromium)",
)


#: Default folder of the screenshots: git-ignored generated output beside the sources, so that it
#: outlives pytest's rotating temporary folders.
DEFAULT_SHOTS = Path(__file__).resolve().parents[2] / "build" / "browser-check"


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig) -> Path:
    """``$DGATING_SCREENSHOT_DIR`` or ``build/browser-check``; printed in the terminal summary."""
    env = os.environ.get("DGATING_SCREENSHOT_DIR")
    path = Path(env) if env else DEFAULT_SHOTS
    pytestconfig.stash[SCREENSHOTS] = path
    return path


@pytest.fixture(scope="session")
def quick_report(quick_out, quick_figures) -> Path:
    """``report.html`` of ``dgating reproduce --quick`` over the session's figure data, without
    the ``verify`` step (the quick proofs suite alone takes longer than this whole module; the
    slow test below runs the complete pipeline)."""
    from dgating.figures import _reproduce

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_reproduce, "STEPS", tuple(s for s in _reproduce.STEPS if s.name != "verify"))
        res = _reproduce.reproduce(quick_out, quick=True, log=lambda line: None)
    assert all(f.cached for f in res.figures)  # the figure data came from `quick_figures`
    return res.report


def _assert_clean(report) -> None:
    assert report.errors == []
    assert report.probe["images"] and report.broken_images == []
    assert report.unrendered_math == []
    for path in report.screenshots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
def test_report_renders_in_chromium(quick_report, screenshot_dir):
    report = inspect_page(quick_report, screenshot_dir, exe=CHROMIUM)
    _assert_clean(report)
    # One <img> per registered figure, each decoded at its PNG size.
    from dgating.figures.registry import FIGURES

    assert len(report.probe["images"]) == len(FIGURES)
    assert all(i["width"] >= 600 for i in report.probe["images"])
    # The probe saw every element the HTML marks as maths (none until the report typesets it).
    html = quick_report.read_text()
    marked = re.findall(r"""class=["'](?:[^"']*\s)?math(?:\s[^"']*)?["']""", html)
    assert len(report.probe["math"]) == len(marked)


@needs_chromium
def test_a_broken_page_is_flagged(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><head><title>broken</title></head><body>"
        '<img src="data:image/png;base64,iVBORw0KGgoAAAA=" alt="truncated png">'
        '<img src="missing.png" alt="no such file">'
        '<span class="math" style="display:none">x</span>'
        '<math class="math"><mi>y</mi></math>'
        "<script>console.error('boom'); undefinedFunction();</script>"
        "</body></html>"
    )
    report = inspect_page(page, tmp_path / "shots", exe=CHROMIUM)
    assert len(report.broken_images) == 2
    assert [m["text"] for m in report.unrendered_math] == ["x"]  # the MathML one renders
    assert any("console.error: boom" in e for e in report.errors)
    assert any("undefinedFunction" in e for e in report.errors)
    assert any("missing.png" in e for e in report.errors)  # the failed load is logged


@pytest.mark.slow
@needs_chromium
def test_full_quick_reproduce_report_renders_in_chromium(tmp_path, screenshot_dir):
    cmd = [sys.executable, "-m", "dgating.cli", "reproduce", "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stderr
    _assert_clean(inspect_page(tmp_path / "report.html", screenshot_dir / "full", exe=CHROMIUM))
