"""Output that survives faults and hostile folders: unique temporary files renamed into place,
symlinks at targets replaced rather than followed, ordinary modes, and sweeps that recompute
unreadable results, deduplicate their grid and lock their folder."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

from dgating._io import atomic_target, save_figure_atomic, write_atomic
from dgating.figures.registry import load_npz, save_npz
from dgating.simulations.sweep import SweepConfig, _folder_lock, run_sweep


@pytest.fixture
def umask():
    def set_mask(mask):
        old = os.umask(mask)
        masks.append(old)
        return old

    masks: list[int] = []
    yield set_mask
    if masks:
        os.umask(masks[0])


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_ordinary_mode(tmp_path, umask, mask, mode):
    umask(mask)
    write_atomic(tmp_path / "a.json", "{}")
    save_npz(tmp_path / "b.npz", {"x": np.arange(3)})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == mode


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    return fig


@pytest.mark.parametrize(
    "write",
    [
        lambda p: write_atomic(p, "new"),
        lambda p: save_npz(p, {"x": np.arange(2)}),
        lambda p: save_figure_atomic(_figure(), p.with_suffix(".png")),
    ],
    ids=["text", "npz", "figure"],
)
def test_symlink_at_target_is_replaced_not_followed(tmp_path, write):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("out.npz", "out.png"):
        (tmp_path / name).symlink_to(victim)
    write(tmp_path / "out.npz")
    assert victim.read_text() == "precious"
    written = [p for p in tmp_path.iterdir() if p.name.startswith("out.") and not p.is_symlink()]
    assert len(written) == 1 and written[0].stat().st_size > 0


def test_planted_symlink_at_the_old_temporary_name_is_ignored(tmp_path):
    # The old save_npz wrote through `NAME.tmp.npz`; an attacker could plant a symlink there.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "d.npz.tmp.npz").symlink_to(victim)
    save_npz(tmp_path / "d.npz", {"x": np.arange(4)})
    assert victim.read_text() == "precious"
    assert load_npz(tmp_path / "d.npz")["x"].tolist() == [0, 1, 2, 3]


def test_temporary_names_are_unique(tmp_path):
    names = set()
    for _ in range(20):
        with atomic_target(tmp_path / "x.pdf") as tmp:
            names.add(tmp.name)
            tmp.write_text("x")
    assert len(names) == 20


def test_a_figure_that_fails_midway_leaves_nothing(tmp_path):
    fig = _figure()

    def broken(fname, **kw):
        with open(fname, "wb") as fh:
            fh.write(b"%PDF-partial")
        raise KeyboardInterrupt  # a kill during the write

    fig.savefig = broken
    target = tmp_path / "f.pdf"
    with pytest.raises(KeyboardInterrupt):
        save_figure_atomic(fig, target)
    assert list(tmp_path.iterdir()) == []
    # Negative control: a real figure is written whole.
    save_figure_atomic(_figure(), target)
    assert target.read_bytes().startswith(b"%PDF") and target.stat().st_size > 1000


TINY = dict(depths=(2,), lams=(0.5,), n_samples=(20,), n_features=(4,), n_groups=(2,))
FAST = dict(n_eval=50, decay=4.0)


def test_duplicated_grid_values_are_computed_once(tmp_path):
    cfg = SweepConfig(**{**TINY, "lams": (0.5, 0.5, 0.50), "seeds": (0, 0.0, 1)}, **FAST)
    assert cfg.lams == (0.5,) and cfg.seeds == (0, 1)
    res = run_sweep(cfg, tmp_path, progress=False)
    assert res.n_total == res.n_computed == 2 and len(res.rows) == 2


@pytest.mark.parametrize("damage", ["truncate", "empty", "foreign", "not_a_dict"])
def test_unreadable_results_are_recomputed(tmp_path, damage):
    cfg = SweepConfig(**TINY, **FAST, seeds=(0, 1))
    first = run_sweep(cfg, tmp_path, progress=False)
    victim = sorted((tmp_path / "configs").glob("*.json"))[0]
    good = victim.read_text()
    victim.write_text(
        {
            "truncate": good[: len(good) // 2],
            "empty": "",
            "foreign": json.dumps({**json.loads(good), "key": "other"}),
            "not_a_dict": "[1, 2]",
        }[damage]
    )
    (tmp_path / "configs" / f".{victim.name}.abc.tmp").write_text("stale temporary")
    again = run_sweep(cfg, tmp_path, progress=False)
    assert (again.n_computed, again.n_skipped) == (1, 1)
    assert json.loads(victim.read_text())["key"] == json.loads(good)["key"]
    assert not list((tmp_path / "configs").glob(".*.tmp"))
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in first.rows]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in again.rows] == strip


def test_a_second_run_on_a_locked_folder_waits_then_resumes(tmp_path, capsys):
    cfg = SweepConfig(**TINY, **FAST)
    result = {}
    with _folder_lock(tmp_path):
        thread = threading.Thread(
            target=lambda: result.update(r=run_sweep(cfg, tmp_path, progress=False))
        )
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and "r" not in result  # blocked by the lock
    thread.join(60)
    assert result["r"].n_computed == 1
    assert "waiting for another run" in capsys.readouterr().err
    # Negative control: once finished, a new run computes nothing.
    assert run_sweep(cfg, tmp_path, progress=False).n_computed == 0
