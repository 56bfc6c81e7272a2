"""Input validation at the public boundary, with one error template.

Every message names the parameter, what was expected and what was received, e.g.
``"`depth` must be an integer >= 2; got 1.5."``. The command line prints these messages as a single
line and exits with status 2.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from numbers import Integral, Real
from pathlib import Path

import numpy as np

__all__ = [
    "LIMITS",
    "InputError",
    "InvalidParameterError",
    "InvalidTypeError",
    "check_array",
    "check_choice",
    "check_depth",
    "check_horizon",
    "check_integer",
    "check_lam",
    "check_output_dir",
    "check_output_file",
    "check_positive",
    "check_real",
    "check_seed",
]


#: Bounds that keep the work of every command bounded; inputs beyond them are rejected up front
#: (exit status 2) with a message naming the bound.
LIMITS = {
    "depth": 32,  # D of flows, sweeps and derivations (derive: see theory/_cli.py)
    "decay": 200.0,  # 4 lam T / D: the imbalance falls by e^-200, far below round-off
    "init_scale": 10.0,  # S of the random start: w ~ S^D makes the flow stiff beyond
    "n_eval": 100_000,  # output times of a flow
    "elements": 50_000_000,  # entries of one data array (400 MB in float64)
    "magnitude": 1e100,  # |X|, |y|: products and squares stay finite in float64
    "grid": 10_000,  # configurations of one sweep
}


class InputError(Exception):
    """Marker base class for errors caused by user input (caught by the command line)."""


class InvalidParameterError(InputError, ValueError):
    """A parameter has the right type but an invalid value."""


class InvalidTypeError(InputError, TypeError):
    """A parameter has the wrong type."""


def _fmt(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def check_depth(depth: object, name: str = "depth") -> int:
    """Return ``depth`` as an ``int`` after checking that it is an integer ``>= 2``."""
    if isinstance(depth, bool) or not isinstance(depth, Real):
        raise InvalidTypeError(f"`{name}` must be an integer >= 2; got {_fmt(depth)}.")
    if not isinstance(depth, Integral) and not float(depth).is_integer():
        raise InvalidParameterError(f"`{name}` must be an integer >= 2; got {_fmt(depth)}.")
    if int(depth) < 2:
        raise InvalidParameterError(f"`{name}` must be an integer >= 2; got {_fmt(depth)}.")
    return int(depth)


def check_lam(lam: object, name: str = "lam") -> float:
    """Return ``lam`` as a ``float`` after checking that it is finite and ``>= 0``."""
    if isinstance(lam, bool) or not isinstance(lam, Real):
        raise InvalidTypeError(f"`{name}` must be a finite number >= 0; got {_fmt(lam)}.")
    if not math.isfinite(float(lam)) or float(lam) < 0:
        raise InvalidParameterError(f"`{name}` must be a finite number >= 0; got {_fmt(lam)}.")
    return float(lam)


def check_positive(value: object, name: str, *, integer: bool = False) -> float | int:
    """Return a finite, strictly positive number (an ``int`` when ``integer``)."""
    kind = "a positive integer" if integer else "a finite number > 0"
    if isinstance(value, bool) or not isinstance(value, Integral if integer else Real):
        raise InvalidTypeError(f"`{name}` must be {kind}; got {_fmt(value)}.")
    if not math.isfinite(float(value)) or value <= 0:
        raise InvalidParameterError(f"`{name}` must be {kind}; got {_fmt(value)}.")
    return int(value) if integer else float(value)


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``; the error lists the valid ones."""
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise InvalidParameterError(f"Unknown `{name}` {_fmt(value)}. Valid: {valid}.")
    return str(value)


def check_array(
    value: object,
    name: str,
    *,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
    dtype: type = np.float64,
    finite: bool = True,
) -> np.ndarray:
    """Convert ``value`` to an array of ``dtype`` and check its dimension, shape and finiteness.

    ``shape`` may contain ``None`` for a free axis. The returned array is a new C-contiguous copy
    when a conversion is needed and the input itself otherwise.
    """
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(
            f"`{name}` must be an array of {np.dtype(dtype).name}; got {type(value).__name__}."
        ) from exc
    if ndim is not None and arr.ndim != ndim:
        raise InvalidParameterError(
            f"`{name}` must be a {ndim}-d array; got {arr.ndim}-d with shape {arr.shape}."
        )
    if shape is not None:
        ok = len(shape) == arr.ndim and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            dims = ["n" if s is None else str(s) for s in shape]
            expected = f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"
            raise InvalidParameterError(f"`{name}` must have shape {expected}; got {arr.shape}.")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InvalidParameterError(
            f"`{name}` must contain only finite values; got {n_bad} NaN or infinite entries."
        )
    return arr


def check_integer(value: object, name: str, lo: int, hi: int) -> int:
    """Return ``value`` as an ``int`` after checking that it is an integer in ``[lo, hi]``.

    Integral floats (``3.0``) are accepted; ``1.5``, ``True``, strings and NaN are not. The upper
    bound keeps the work of a run bounded (e.g. ``--n-eval``, sweep depths).
    """
    kind = f"an integer in [{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidTypeError(f"`{name}` must be {kind}; got {_fmt(value)}.")
    if not isinstance(value, Integral) and not (
        math.isfinite(float(value)) and float(value).is_integer()
    ):
        raise InvalidParameterError(f"`{name}` must be {kind}; got {_fmt(value)}.")
    if not lo <= int(value) <= hi:
        raise InvalidParameterError(f"`{name}` must be {kind}; got {_fmt(value)}.")
    return int(value)


def check_seed(value: object, name: str = "seed") -> int:
    """Return a seed for :func:`numpy.random.default_rng`: an integer in ``[0, 2**63 - 1]``."""
    return check_integer(value, name, 0, 2**63 - 1)


def check_real(value: object, name: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """Return ``value`` as a ``float`` after checking that it is finite and in ``[lo, hi]``
    (``(lo, hi]`` when ``lo_open``)."""
    kind = f"a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidTypeError(f"`{name}` must be {kind}; got {_fmt(value)}.")
    v = float(value)
    if not (math.isfinite(v) and (lo < v if lo_open else lo <= v) and v <= hi):
        raise InvalidParameterError(f"`{name}` must be {kind}; got {_fmt(value)}.")
    return v


def _check_writable_dir(folder: Path, name: str, target: Path) -> None:
    """Create a unique file in ``folder`` and remove it: the only check of writability that also
    holds for root and for read-only or full file systems."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".dgating-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidParameterError(
            f"`{name}` must be a writable location; got '{target}' ({exc.strerror or exc})."
        ) from None


def check_output_dir(path: object, name: str = "--out") -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` to an existing, writable folder, creating it.

    Rejects the empty string (it would mean the working folder), an existing file, and folders
    that cannot be created or written (read-only or full file systems, missing permissions).
    Called before any work starts so that a run never fails after its computation.
    """
    if not isinstance(path, str | os.PathLike) or not str(path).strip():
        raise InvalidParameterError(f"`{name}` must be a non-empty folder path; got {_fmt(path)}.")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(
            f"`{name}` must be a folder; got '{folder}' (an existing file)."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(
            f"`{name}` must be a folder that can be created; got '{folder}' "
            f"({exc.strerror or exc})."
        ) from None
    _check_writable_dir(folder, name, folder)
    return folder


def check_output_file(path: object, name: str) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` to a file that can be written: a non-empty path
    that is not a folder, in an existing, writable folder (which is not created)."""
    if not isinstance(path, str | os.PathLike) or not str(path).strip():
        raise InvalidParameterError(f"`{name}` must be a non-empty file path; got {_fmt(path)}.")
    target = Path(path)
    if target.is_dir():
        raise InvalidParameterError(f"`{name}` must be a file path; got '{target}' (a folder).")
    parent = target.parent
    if not parent.is_dir():
        raise InvalidParameterError(
            f"`{name}` must be in an existing folder; got '{target}' ('{parent}' does not exist)."
        )
    _check_writable_dir(parent, name, target)
    return target


def check_horizon(depth: int, lam: float, t_end: float, name: str = "t_end") -> float:
    r"""Return ``t_end`` after checking that it is finite, positive and that the imbalance decay
    :math:`4\lambda T / D` (docs/theory.md [T-imbalance-flow]: :math:`\Delta(t) = \Delta(0)
    e^{-4\lambda t/D}`) is at most ``LIMITS["decay"]``; longer horizons only integrate round-off and
    their cost is unbounded.
    """
    t = check_real(t_end, name, 0.0, 1e300, lo_open=True)
    decay = 4.0 * lam * t / depth
    if decay > LIMITS["decay"]:
        raise InvalidParameterError(
            f"`{name}` must keep 4 lam T / D <= {LIMITS['decay']:g} (the imbalance decays by "
            f"e^-(4 lam T / D)); got T = {t:g}, i.e. 4 lam T / D = {decay:.3g}."
        )
    return t
