"""``dgating flow`` and ``dgating simulate``: JSON contract, exit codes, one-line errors."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from dgating.cli import main

DATA = str(resources.files("dgating") / "data" / "example.npz")


def _flow_json(capsys, *extra: str) -> dict:
    code = main(["flow", DATA, "--depth", "3", "--lam", "0.3", "--t-end", "40", "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_flow_json_contract(capsys):
    out = _flow_json(capsys, "--seed", "2", "--init-scale", "0.8", "--trajectory")
    for key in (
        "t",
        "gap",
        "imbalance_initial",
        "imbalance_final",
        "rate_imbalance",
        "rate_imbalance_theory",
        "rate_gap",
        "rate_gap_surviving",
        "rate_gap_vanishing",
        "nfev",
        "seconds",
    ):
        assert key in out
    assert len(out["t"]) == len(out["gap"]) == 400
    J = 10  # example.npz: 10 groups of 4
    assert len(out["imbalance_initial"]) == J and len(out["imbalance_initial"][0]) == 2
    assert out["rate_imbalance_theory"] == pytest.approx(0.4)
    assert out["rate_imbalance"] == pytest.approx(0.4, rel=1e-6)
    assert out["nfev"] > 0 and out["seconds"] > 0
    again = _flow_json(capsys, "--seed", "2", "--init-scale", "0.8")
    assert again["imbalance_initial"] == out["imbalance_initial"]  # seeded initialisation
    other = _flow_json(capsys, "--seed", "3", "--init-scale", "0.8")
    assert other["imbalance_initial"] != out["imbalance_initial"]


def test_flow_json_is_a_compact_summary_without_trajectory(capsys):
    out = _flow_json(capsys)
    assert "t" not in out and "gap" not in out  # the trajectory only with --trajectory
    assert out["n_eval"] == 400 and out["t_end"] == 40.0
    assert out["gap_final"] < out["gap_initial"]
    assert len(json.dumps(out)) < 4000  # one short line, not 2 x 400 numbers


def _flow_text(capsys, t_end: str) -> tuple[int, str, str]:
    code = main(["flow", DATA, "--depth", "3", "--lam", "0.1", "--t-end", t_end])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_flow_says_when_the_horizon_is_too_short(capsys):
    # At T = 100 the surviving-group gap rate is still 3 % above 8 lam/D (pre-asymptotic); the
    # suggested horizon log(1e12) / (4 lam/D) = 208 makes every rate match to 2 %. A
    # pre-asymptotic rate is not a trustworthy estimate of the asymptotic one: exit status 1 and
    # one stderr line with the suggestion.
    code, _, err = _flow_text(capsys, "100")
    assert code == 1 and len(err.splitlines()) == 1
    assert "too short for the asymptotic rates" in err and "--t-end 208" in err
    assert "surviving" in err
    # negative control: at the suggested horizon there is nothing to say
    assert _flow_text(capsys, "208")[0::2] == (0, "")


def test_flow_batched_backend_and_empty_class_is_null(capsys):
    # With a tiny lam nothing vanishes by T: the vanishing class is empty -> null.
    code = main(
        [
            "flow",
            DATA,
            "--depth",
            "2",
            "--lam",
            "0.001",
            "--t-end",
            "5",
            "--json",
            "--backend",
            "batched",
            "--rtol",
            "1e-8",
            "--n-eval",
            "50",
        ]
    )
    # T = 5 at lam = 0.001 is far from asymptotic: the result is written, with exit status 1
    assert code == 1
    captured = capsys.readouterr()
    assert "too short for the asymptotic rates" in captured.err
    out = json.loads(captured.out)
    assert out["rate_gap_vanishing"] is None and out["asymptotic"] is False
    assert out["backend"] == "batched"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--depth", "1", "--lam", "0.3", "--t-end", "5"],
            "`--depth` must be an integer in [2, 32]",
        ),
        (["--depth", "3", "--lam", "-1", "--t-end", "5"], "`--lam` must be a finite number >= 0"),
        (["--depth", "3", "--lam", "0.3", "--t-end", "0"], "`--t-end` must be a finite number"),
        (
            ["--depth", "3", "--lam", "0.3", "--t-end", "5", "--backend", "jax"],
            "Unknown `--backend` 'jax'",
        ),
    ],
)
def test_flow_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(["flow", DATA, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_simulate_runs_a_config_file(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        "[sweep]\ndepths = [3]\nlams = [0.3]\nn_samples = [40]\nn_features = [8]\n"
        "n_groups = [4]\nn_eval = 200\n"
    )
    out = tmp_path / "out"
    assert main(["simulate", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    assert "1 configurations (1 computed, 0 resumed, 0 failed)" in capsys.readouterr().out
    assert (out / "results.csv").is_file() and (out / "summary.json").is_file()
    assert main(["simulate", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "`--config` must be a TOML file" in capsys.readouterr().err
