"""The README runs as written and quotes the measured run times of ``dgating reproduce``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dgating.figures._reproduce import RUN_TIME, RUN_TIME_MACHINE

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_python_snippets_run_as_written(capsys):
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) == 2
    namespace = {"__name__": "__readme__"}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "True True"  # both routes agree and the minimiser is certified
    assert namespace["path"].coefs.shape == (50, 40)
    exec(compile(blocks[1], str(README), "exec"), namespace)  # the estimator block continues
    assert namespace["reg"].coef_.shape == (40,)


def test_extracting_a_broken_snippet_fails():
    # negative control: the snippet as it was (X never defined) must not pass this test
    broken = _python_blocks("```python\nproblem = GroupedProblem(X, y, groups)\n```\n")[0]
    with pytest.raises(NameError):
        exec(compile(broken, "README.md", "exec"), {"GroupedProblem": object})


def test_one_time_statement_per_mode_matches_the_cli():
    text = " ".join(README.read_text(encoding="utf-8").split())
    for mode, when in RUN_TIME.items():
        assert when in text, (mode, when)
    assert RUN_TIME_MACHINE in text
    # no other, contradicting statement of a run time is left
    assert not re.search(r"two-minute|under 30 seconds|about 4 minutes", text)
