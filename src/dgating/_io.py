"""Output helpers shared by every command that writes results: strict JSON and atomic files.

Every file the package writes goes through :func:`atomic_target`: a unique temporary file in the
destination folder (created with ``O_EXCL``, so a planted file or symlink is never followed), given
the ordinary mode ``0o666 & ~umask``, flushed to disk and renamed over the target with
:func:`os.replace` (which replaces a symlink at the target instead of writing through it). A kill at
any moment leaves the old file or the whole new one, never a partial or empty file.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_target", "json_safe", "read_toml", "save_figure_atomic", "write_atomic"]


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; on success it replaces ``path`` atomically.

    For writers that take a file name or need a real file (``savefig``, :func:`numpy.savez`). The
    temporary file is ``.NAME.RANDOM.tmp`` (pass the format explicitly to writers that guess it
    from the extension; :func:`save_figure_atomic` does). On any exception
    (including :class:`KeyboardInterrupt`) the temporary file is removed and ``path`` is untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_target(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, text: str | bytes) -> Path:
    """Write ``text`` (or bytes) to ``path`` atomically (see :func:`atomic_target`): a reader or a
    resumed run sees the old file or the whole new one, never a partial write; the temporary file
    is removed if writing fails."""
    path = Path(path)
    if not isinstance(text, str | bytes):
        raise TypeError(f"`text` must be str or bytes; got {type(text).__name__}.")
    with atomic_target(path) as tmp:
        if isinstance(text, bytes):
            tmp.write_bytes(text)
        else:
            with open(tmp, "w", newline="") as fh:
                fh.write(text)
    return path


def save_figure_atomic(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """``fig.savefig(path, **kwargs)`` through :func:`atomic_target`: a kill never leaves an empty
    or partial PDF/PNG, and a symlink at ``path`` is replaced, not written through."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or None)
    with atomic_target(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return path


def read_toml(path: Path, option: str) -> dict:
    """Parse the TOML file ``path`` given by the command-line ``option``; an unreadable or
    invalid file is an :class:`~dgating._validation.InvalidParameterError` naming ``option``."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as the tomli package
        import tomli as tomllib

    from ._validation import InvalidParameterError

    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        message = f"`{option}` must be valid TOML; got '{path}' ({exc})."
        raise InvalidParameterError(message) from None
