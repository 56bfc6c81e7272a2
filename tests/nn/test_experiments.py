"""dgating.nn.experiments: tidy rows, matched magnitude pruning, atomic outputs, determinism."""

from __future__ import annotations

import csv
import json

import pytest

from dgating._validation import InvalidParameterError
from dgating.nn.experiments import (
    COLUMNS,
    ExperimentConfig,
    format_table,
    quick_config,
    run_experiments,
    trade_off_table,
    write_results,
)


@pytest.fixture(scope="module")
def quick_rows():
    cfg = quick_config(datasets=("digits", "wine"))
    return cfg, run_experiments(cfg, progress=False)


def _strip_time(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_quick_rows_are_tidy_and_complete(quick_rows):
    cfg, rows = quick_rows
    n_cells = len(cfg.datasets) * cfg.seeds * len(cfg.depths) * len(cfg.lams)
    assert len(rows) == 4 * n_cells  # dgating, subgradient, proximal, magnitude
    for r in rows:
        assert tuple(r) == COLUMNS
        assert 0.0 <= r["sparsity"] <= 1.0 and 0.0 <= r["accuracy"] <= 1.0
        assert r["n_kept"] == round((1 - r["sparsity"]) * r["n_groups"])
    assert {r["n_groups"] for r in rows if r["dataset"] == "wine"} == {13}
    assert {r["n_groups"] for r in rows if r["dataset"] == "digits"} == {64}
    # the quick grid shows what the method does (issue 13: it showed sparsity 0.00 everywhere)
    assert max(r["sparsity"] for r in rows if r["method"] == "dgating") > 0.1
    # exported MLP: a removed hidden neuron of digits takes 64 + 1 + 10 parameters with it; with
    # none left the network is its constant output (a buffer, no parameters)
    for r in rows:
        if r["dataset"] == "digits":
            expected = r["n_params_dense"] - 75 * (64 - r["n_kept"]) if r["n_kept"] else 0
            assert r["n_params"] == expected


@pytest.mark.slow  # five ResNet trainings (about 20 s on a loaded machine)
def test_resnet_rows_count_the_exported_parameters():
    cfg = quick_config(datasets=("digits-resnet",), depths=(3,))
    rows = run_experiments(cfg, progress=False)
    assert sorted(r["method"] for r in rows) == ["dgating", "magnitude", "proximal"]
    w = cfg.resnet_width
    dense = (9 * w + 2 * w) + 2 * (w * w * 9 + 2 * w + w * w * 9 + w) + (4 * w * 10 + 10)
    for r in rows:
        assert r["n_groups"] == 2 * w and r["n_params_dense"] == dense
        # an inner channel: conv1 filter (9 w), batch norm pair (2), conv2 input slice (9 w)
        removed = 2 * w - r["n_kept"]
        assert r["n_params"] <= dense - removed * (18 * w + 2)
        assert r["n_params"] >= dense - removed * (18 * w + 2) - 2 * w  # conv2 biases folded
    dg = next(r for r in rows if r["method"] == "dgating")
    assert dg["sparsity"] > 0  # the quick mode shows sparsity
    mag = next(r for r in rows if r["method"] == "magnitude")
    assert mag["sparsity"] == dg["sparsity"]


def test_magnitude_pruning_matches_dgating_sparsity(quick_rows):
    _, rows = quick_rows
    key = lambda r: (r["dataset"], r["depth"], r["lam"], r["seed"])  # noqa: E731
    dg = {key(r): r["sparsity"] for r in rows if r["method"] == "dgating"}
    mag = {key(r): r["sparsity"] for r in rows if r["method"] == "magnitude"}
    assert mag == dg


def test_proximal_sparsity_follows_lam():
    # lam = 0 keeps every feature; a huge lam removes all of them (negative control of the count)
    cfg = quick_config(datasets=("wine",), depths=(2,), lams=(0.0, 50.0), methods=("proximal",))
    rows = run_experiments(cfg, progress=False)
    by_lam = {r["lam"]: r["sparsity"] for r in rows}
    assert by_lam == {0.0: 0.0, 50.0: 1.0}


def test_runs_are_deterministic():
    cfg = quick_config(datasets=("wine",), depths=(3,), lams=(0.1,), methods=("dgating",))
    a = run_experiments(cfg, progress=False)
    b = run_experiments(cfg, progress=False)
    assert _strip_time(a) == _strip_time(b)
    c = run_experiments(
        quick_config(datasets=("wine",), depths=(3,), lams=(0.1,), methods=("dgating",), lr=0.05),
        progress=False,
    )
    assert _strip_time(a) != _strip_time(c)  # negative control: the settings matter


def test_write_results_is_atomic_and_round_trips(quick_rows, tmp_path):
    cfg, rows = quick_rows
    out = tmp_path / "res"
    paths = write_results(rows, out, cfg)
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json"]
    with open(paths["csv"], newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows) and tuple(table[0]) == COLUMNS
    assert [float(t["accuracy"]) for t in table] == [r["accuracy"] for r in rows]
    payload = json.loads(paths["json"].read_text())
    assert payload["columns"] == list(COLUMNS) and len(payload["rows"]) == len(rows)
    assert payload["trade_off"] == json.loads(json.dumps(trade_off_table(rows)))


def test_trade_off_table_means_over_seeds():
    rows = [
        {
            "dataset": "wine",
            "depth": 2,
            "lam": 0.1,
            "method": "dgating",
            "seed": s,
            "sparsity": sp,
            "accuracy": acc,
        }
        for s, sp, acc in [(0, 0.2, 0.9), (1, 0.4, 0.7)]
    ]
    (summary,) = trade_off_table(rows)
    assert summary["sparsity"] == pytest.approx(0.3) and summary["accuracy"] == pytest.approx(0.8)
    assert summary["n_seeds"] == 2
    assert "0.30/0.800" in format_table(rows)


def test_config_validation():
    with pytest.raises(InvalidParameterError, match="Unknown `datasets` 'mnist'"):
        ExperimentConfig(datasets=("mnist",))
    with pytest.raises(InvalidParameterError, match="must include 'dgating'"):
        ExperimentConfig(methods=("magnitude",))
    with pytest.raises(InvalidParameterError, match="`seeds` must be a positive integer"):
        ExperimentConfig(seeds=0)
    with pytest.raises(InvalidParameterError, match="`resnet_width` must be a positive integer"):
        ExperimentConfig(resnet_width=0)
    with pytest.raises(InvalidParameterError, match="`depth` must be an integer >= 2"):
        ExperimentConfig(depths=(1,))
