"""Input validation at the public boundary, with one error template.

Every message names the parameter, what was expected and what was received, e.g.
``"`depth` must be an integer >= 2; got 1.5."``. The command line prints these messages as a single
line and exits with status 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

import numpy as np

__all__ = [
    "InputError",
    "InvalidParameterError",
    "InvalidTypeError",
    "check_array",
    "check_choice",
    "check_depth",
    "check_lam",
    "check_positive",
]


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
