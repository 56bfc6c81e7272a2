"""Strict JSON and atomic writes shared by every command that writes results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dgating._io import json_safe, write_atomic


def test_json_safe_makes_strict_json():
    obj = {"a": [np.float64(np.inf), -np.inf, np.nan], "b": np.arange(3), "c": (1, "x")}
    text = json.dumps(json_safe(obj), allow_nan=False)  # raises on NaN/inf
    assert json.loads(text) == {"a": [None, None, None], "b": [0, 1, 2], "c": [1, "x"]}


def test_write_atomic_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_write_keeps_old_file_and_removes_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")

    with pytest.raises(TypeError):
        write_atomic(path, 12345)  # type: ignore[arg-type]  (not text: the write fails)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
