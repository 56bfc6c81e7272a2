"""Sweeps: configuration files, atomic per-configuration results, resume after SIGKILL, dask."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dgating._validation import InvalidParameterError
from dgating.simulations import (
    QUICK_SWEEP,
    SweepConfig,
    load_sweep_config,
    run_configuration,
    run_sweep,
)

TINY = """
[sweep]
depths = [3, 4]
lams = [0.3]
seeds = [0]
n_samples = [40]
n_features = [8]
n_groups = [4]
n_eval = 200
"""


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_config_file_and_builtins(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TINY)
    cfg = load_sweep_config(path)
    assert cfg.depths == (3, 4) and cfg.n_eval == 200
    assert len(cfg.configurations()) == 2
    assert load_sweep_config("quick") == QUICK_SWEEP
    keys = [c.key for c in cfg.configurations()]
    assert len(set(keys)) == len(keys)
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep]\ndepth = [3]\n")
    with pytest.raises(InvalidParameterError, match=r"Unknown sweep keys \['depth'\]. Valid:"):
        load_sweep_config(bad)
    with pytest.raises(InvalidParameterError, match="`--config` must be a TOML file"):
        load_sweep_config(tmp_path / "missing.toml")
    with pytest.raises(InvalidParameterError, match=r"`depths` must be an integer in \[2, 32\]"):
        SweepConfig(depths=(1,))


def test_run_configuration_row_matches_theory():
    cfg = SweepConfig(depths=(3,), lams=(0.3,), n_samples=(40,), n_features=(8,), n_groups=(4,))
    row = run_configuration(cfg.configurations()[0])
    assert row["status"] == 0
    assert row["rel_err_imbalance"] < 1e-6
    assert row["imbalance_identity_error"] < 1e-9
    json.dumps(row)  # plain JSON types only


def test_sweep_writes_every_configuration_once_and_resumes(tmp_path):
    cfg = load_sweep_config(_write(tmp_path, TINY))
    first = run_sweep(cfg, tmp_path / "out", progress=False)
    assert (first.n_computed, first.n_skipped) == (2, 0)
    again = run_sweep(cfg, tmp_path / "out", progress=False)
    assert (again.n_computed, again.n_skipped) == (0, 2)
    rows = _rows(again.table)
    assert sorted(r["key"] for r in rows) == sorted(c.key for c in cfg.configurations())
    summary = json.loads(again.summary.read_text())
    assert summary["configurations"] == 2 and summary["failed"] == 0


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_sweep_killed_mid_run_resumes_without_loss(tmp_path):
    grid = TINY.replace("lams = [0.3]", "lams = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35]")
    config_path = _write(tmp_path, grid)
    out = tmp_path / "out"
    cdir = out / "configs"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dgating.cli",
            "simulate",
            "--config",
            str(config_path),
            "--out",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if cdir.is_dir() and len(list(cdir.glob("*.json"))) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finished = {p.name: p.read_bytes() for p in cdir.glob("*.json")}
    cfg = load_sweep_config(config_path)
    n_total = len(cfg.configurations())
    assert 3 <= len(finished) < n_total
    assert not (out / "results.csv").exists()
    for data in finished.values():
        json.loads(data)  # atomic writes: no truncated file
    res = run_sweep(cfg, out, progress=False)
    assert res.n_skipped == len(finished) and res.n_computed == n_total - len(finished)
    for name, data in finished.items():
        assert (cdir / name).read_bytes() == data  # finished work was not recomputed
    keys = [r["key"] for r in _rows(res.table)]
    assert sorted(keys) == sorted(c.key for c in cfg.configurations())  # each exactly once
    assert len(list(cdir.glob("*.json"))) == n_total


def test_sweep_on_a_dask_local_cluster(tmp_path):
    from distributed import LocalCluster

    cfg = load_sweep_config(_write(tmp_path, TINY))
    with LocalCluster(
        n_workers=1,
        processes=False,
        threads_per_worker=1,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        res = run_sweep(cfg, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False)
    assert res.n_computed == 2
    local = run_sweep(cfg, tmp_path / "local", progress=False)
    for a, b in zip(res.rows, local.rows):
        assert a["key"] == b["key"] and a["rate_imbalance"] == b["rate_imbalance"]


def test_sweep_with_local_worker_processes(tmp_path):
    cfg = load_sweep_config(_write(tmp_path, TINY))
    res = run_sweep(cfg, tmp_path / "pool", workers=2, progress=False)
    assert res.n_computed == 2 and all(r["status"] == 0 for r in res.rows)


def test_rate_grid_ratios_are_one():
    from dgating.simulations import rate_grid

    cfg = SweepConfig(
        depths=(3, 4), lams=(0.3,), n_samples=(40,), n_features=(8,), n_groups=(4,), n_eval=200
    )
    grid = rate_grid(cfg)
    assert grid["imbalance"].shape == (2, 1)
    assert abs(grid["imbalance"] - 1).max() < 1e-6
    n_finite = 0
    for key in ("surviving", "vanishing"):
        finite = np.isfinite(grid[key])
        n_finite += int(finite.sum())
        assert np.all(abs(grid[key][finite] - 1) < 1e-3)
    assert n_finite >= 2


def test_the_documented_example_toml_parses(tmp_path):
    import textwrap

    from dgating.simulations import sweep

    doc = sweep.__doc__
    block = doc.split("[sweep]", 1)[1].split("\n\nThe built-in", 1)[0]
    text = "[sweep]" + textwrap.dedent("    " + block.lstrip(" "))
    cfg = load_sweep_config(_write(tmp_path, textwrap.dedent(text)))
    assert cfg.depths == (2, 3, 4, 5) and len(cfg.configurations()) == 36
