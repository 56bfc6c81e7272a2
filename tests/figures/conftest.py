"""Quick-config figure data computed once per test session and shared by the figure tests."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def quick_out(tmp_path_factory):
    """An output folder laid out like ``dgating reproduce --quick`` (``figures/``, ``data/``)."""
    return tmp_path_factory.mktemp("quick")


@pytest.fixture(scope="session")
def quick_figures(quick_out):
    """``{name: FigureResult}`` of every registered figure, rendered once on its quick config."""
    from dgating.figures.registry import render_all

    return {res.name: res for res in render_all(quick_out, quick=True)}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Name the folder of the browser check's screenshots, or say why there are none."""
    from .browser import SCREENSHOTS, find_chromium

    path = config.stash.get(SCREENSHOTS, None)
    if path is not None:
        terminalreporter.write_sep("-", "browser check")
        terminalreporter.write_line(f"screenshots of the report: {path}")
    elif find_chromium() is None:
        terminalreporter.write_sep("-", "browser check")
        terminalreporter.write_line(
            "browser check skipped: no `chromium` on PATH (Debian: apt-get install -y chromium)"
        )
