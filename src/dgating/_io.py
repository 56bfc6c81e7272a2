"""Output helpers shared by every command that writes results: strict JSON and atomic files."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["json_safe", "write_atomic"]


def json_safe(x: object) -> object:
    """``x`` with NaN and infinities as ``None``, numpy scalars and arrays as Python objects and
    tuples as lists, recursively, so that :func:`json.dumps` writes strict JSON.

    Examples
    --------
    >>> json_safe({"a": float("nan"), "b": (np.float64(1.5), np.arange(2))})
    {'a': None, 'b': [1.5, [0, 1]]}
    """
    if isinstance(x, np.ndarray):
        x = x.tolist()
    elif isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    return x


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, flushed to disk,
    then :func:`os.replace`. A reader (or a resumed run) sees the old file or the whole new one,
    never a partial write; the temporary file is removed if writing fails."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
