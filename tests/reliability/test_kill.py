"""Kill-and-resume: after SIGKILL of the parent no worker lives on, a rerun computes every
configuration exactly once and the results equal those of an uninterrupted run (slow: real
processes). The fast serial kill test is ``tests/simulations/test_sweep.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgating.simulations.sweep import load_sweep_config, run_sweep

GRID = """[sweep]
depths = [2, 3]
lams = [0.2, 0.3, 0.4]
seeds = [0, 1]
n_samples = [40]
n_features = [8]
n_groups = [4]
n_eval = 200
"""


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _strip(rows):
    return sorted(
        ({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=lambda r: r["key"]
    )


@pytest.mark.slow
def test_parallel_sweep_killed_leaves_no_worker_and_resumes_exactly(tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text(GRID)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dgating.cli",
            "simulate",
            "--config",
            str(config),
            "--out",
            str(out),
            "--workers",
            "2",
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _children(proc.pid)
            if len(list((out / "configs").glob("*.json"))) >= 2 and workers:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        proc.send_signal(signal.SIGKILL)  # the parent only: it cannot stop its workers
        proc.wait(30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "orphaned workers live on after 10 s"
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
    cfg = load_sweep_config(config)
    n_total = len(cfg.configurations())
    finished = len(list((out / "configs").glob("*.json")))
    assert 2 <= finished < n_total
    resumed = run_sweep(cfg, out, workers=2, progress=False)
    assert resumed.n_skipped == finished and resumed.n_computed == n_total - finished
    keys = [r["key"] for r in resumed.rows]
    assert sorted(keys) == sorted(c.key for c in cfg.configurations())  # each exactly once
    reference = run_sweep(cfg, tmp_path / "reference", progress=False)
    assert _strip(resumed.rows) == _strip(reference.rows)


@pytest.mark.slow
def test_reproduce_killed_then_resumed_reuses_its_caches(tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "dgating.cli", "reproduce", "--quick", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _children(proc.pid)
            if len(list((out / "cache").glob("*.json"))) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "reproduce finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)]
    finally:
        if proc.poll() is None:
            proc.kill()
    cached = sorted(p.name for p in (out / "cache").glob("*.json"))
    again = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    assert again.returncode in (0, 1) and "Traceback" not in again.stderr
    for name in cached:
        step = name.rsplit("-", 1)[0]
        assert any(f"[{step}" in line and "cached" in line for line in again.stderr.splitlines())
    files = [p for p in out.rglob("*") if p.is_file()]
    assert (out / "report.html").stat().st_size > 0
    assert not [p for p in files if p.stat().st_size == 0 and p.name != ".lock"]
    assert not [p for p in files if p.name.endswith(".tmp")]
