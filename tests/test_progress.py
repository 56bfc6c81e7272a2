"""One progress helper for every long run: a bar on a terminal, lines otherwise."""

from __future__ import annotations

import io

from dgating._progress import Progress, progress_iter


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_one_flushed_line_per_step_when_not_a_terminal():
    buf = io.StringIO()
    bar = Progress(3, "verify", stream=buf, initial=1)
    bar.set_postfix_str("reg_tall D=3")
    bar.update()
    bar.update()
    bar.close()
    lines = buf.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["verify: 2/3", "verify: 3/3"]
    assert lines[0].endswith("reg_tall D=3") and "(100%)" in lines[1]


def test_a_terminal_gets_a_bar_not_lines():
    buf = _Terminal()
    with Progress(2, "sweep", stream=buf) as bar:
        bar.update(2)
    # negative control for the line mode: tqdm redraws with carriage returns, no line per step
    assert "\r" in buf.getvalue() and "sweep: 1/2" not in buf.getvalue()


def test_disabled_progress_prints_nothing(capsys):
    assert list(progress_iter(range(3), "quiet", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    assert list(progress_iter(iter(range(2)), "loud")) == [0, 1]
    assert capsys.readouterr().err.count("loud: ") == 2
