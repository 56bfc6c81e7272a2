"""``dgating nn-experiment`` end to end (quick grid)."""

from __future__ import annotations

import json

from dgating.cli import main


def test_nn_experiment_quick_writes_results(tmp_path, capsys):
    out = tmp_path / "nn"
    args = ["--quick", "--depths", "2", "--lams", "0.1", "--datasets", "digits", "wine"]
    code = main(["nn-experiment", *args, "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "sparsity/accuracy" in text and "dgating" in text and "magnitude" in text
    assert (out / "results.csv").exists() and (out / "results.json").exists()


def test_nn_experiment_json(capsys):
    args = ["--quick", "--depths", "3", "--lams", "0.1", "--datasets", "wine", "digits-resnet"]
    code = main(["nn-experiment", *args, "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert {r["method"] for r in payload["rows"]} == {
        "dgating",
        "subgradient",
        "proximal",
        "magnitude",
    }
    assert payload["files"] == {}
    resnet = [r for r in payload["rows"] if r["dataset"] == "digits-resnet"]
    assert {r["method"] for r in resnet} == {"dgating", "proximal", "magnitude"}
    assert all(r["n_params"] <= r["n_params_dense"] for r in resnet)


def test_nn_experiment_bad_input_exits_2(capsys):
    assert main(["nn-experiment", "--quick", "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`--seeds` must be an integer in [1, 1000]" in err
