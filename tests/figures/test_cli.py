"""``dgating figures`` and ``dgating reproduce`` on the command line."""

from __future__ import annotations

from dgating.cli import build_parser, main


def test_figures_list_names_every_figure(capsys):
    assert main(["figures", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 10 and out[0].split()[:2] == ["F1", "penalty_geometry"]


def test_unknown_figure_is_one_line_and_exit_2(capsys):
    assert main(["figures", "--only", "F99", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Unknown figure 'F99' for --only. Valid: F1=penalty_geometry" in err


def test_figures_only_by_label_writes_pdf_png_and_data(tmp_path, capsys):
    assert main(["figures", "--only", "f1", "--quick", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "figures" / "penalty_geometry.pdf").is_file()
    assert (tmp_path / "figures" / "penalty_geometry.png").is_file()
    assert len(list((tmp_path / "data").glob("penalty_geometry-*.npz"))) == 1
    assert "computed" in capsys.readouterr().err
    assert main(["figures", "--only", "penalty_geometry", "--quick", "--out", str(tmp_path)]) == 0
    assert "cached" in capsys.readouterr().err


def test_reproduce_options_parse_with_defaults():
    args = build_parser().parse_args(["reproduce"])
    assert (args.out, args.quick, args.force) == ("dgating-output", False, False)
    args = build_parser().parse_args(["reproduce", "--quick", "--force", "--out", "x"])
    assert (args.out, args.quick, args.force) == ("x", True, True)


def test_python_m_entry_point_lists_and_rejects(capsys):
    from dgating.figures.__main__ import main as module_main

    assert module_main(["--list"]) == 0
    assert "F10" in capsys.readouterr().out
    assert module_main(["nope", "--out", "unused"]) == 2
    assert "Unknown figure 'nope'" in capsys.readouterr().err
