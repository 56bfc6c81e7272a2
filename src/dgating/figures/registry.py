r"""Figure specifications, the ``FIGURES`` registry and the on-disk cache of computed data.

A figure is a :class:`FigureSpec`: a pure ``compute(config) -> dict[str, ndarray]``, a
``plot(data, ax=None) -> Figure`` and two configurations (the default one and a fast
``quick_config``). :func:`render` computes (or loads from the cache), plots and writes vector PDF
and PNG. Data are cached as ``.npz`` files in ``<out>/data`` under a key that hashes the figure
name, its configuration and the dgating version, so a re-run with the same configuration reuses
them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_target
from .._validation import InvalidParameterError

__all__ = [
    "FIGURES",
    "FIGURE_MODULES",
    "FigureResult",
    "FigureSpec",
    "compute_cached",
    "code_fingerprint",
    "config_hash",
    "config_to_dict",
    "get_spec",
    "load_npz",
    "render",
    "render_all",
    "save_npz",
    "summary_row",
]

#: Modules holding one ``SPEC`` each, in the order of the report (F1 ... F10).
FIGURE_MODULES = (
    "fig_penalty_geometry",
    "fig_imbalance_decay",
    "fig_gap",
    "fig_group_norms",
    "fig_subgradient",
    "fig_paths",
    "fig_correspondence",
    "fig_sgd",
    "fig_rates",
    "fig_nn_tradeoff",
)


@dataclass(frozen=True)
class FigureSpec:
    r"""A registered figure.

    Parameters
    ----------
    name : str
        Registry key, also the stem of the output files.
    compute : callable
        ``compute(config) -> dict[str, ndarray]``; pure (deterministic given ``config``).
    plot : callable
        ``plot(data, ax=None) -> matplotlib.figure.Figure``; no ``plt.show``, no global state.
    quick_config : frozen dataclass
        A configuration that computes in a few seconds (tests, ``--quick``).
    config : frozen dataclass
        The default configuration.
    label : str
        Short label in the report (e.g. ``"F2"``).
    title : str
        Title of the figure (first line of the module docstring).
    claim : str
        The claim the figure supports (the module docstring's paragraph).
    summary : callable, optional
        ``summary(data) -> list[dict]``: rows of theory against measurement (see
        :func:`summary_row`) for the report.
    """

    name: str
    compute: Callable[[Any], dict[str, np.ndarray]]
    plot: Callable[..., Any]
    quick_config: Any
    config: Any
    label: str = ""
    title: str = ""
    claim: str = ""
    summary: Callable[[dict[str, np.ndarray]], list[dict]] | None = None

    @classmethod
    def from_module(
        cls,
        doc: str | None,
        *,
        name: str,
        label: str,
        compute: Callable,
        plot: Callable,
        quick_config: Any,
        config: Any,
        summary: Callable | None = None,
    ) -> FigureSpec:
        """Build a spec whose title and claim come from a sphinx-gallery-style docstring."""
        title, claim = _parse_doc(doc or "")
        return cls(name, compute, plot, quick_config, config, label, title, claim, summary)


def _parse_doc(doc: str) -> tuple[str, str]:
    lines = [ln.rstrip() for ln in doc.strip().splitlines()]
    if len(lines) >= 2 and set(lines[1]) == {"="}:
        title, rest = lines[0].strip(), lines[2:]
    else:
        title, rest = (lines[0].strip() if lines else ""), lines[1:]
    paragraph: list[str] = []
    for ln in rest:
        if not ln.strip():
            if paragraph:
                break
            continue
        paragraph.append(ln.strip())
    return title, " ".join(paragraph)


def summary_row(
    quantity: str,
    setting: str,
    theory: float,
    measured: float,
    note: str = "",
    *,
    tol: float | None = None,
    upper: bool = False,
) -> dict:
    """One row of the theory-against-measurement table; ``ratio = measured / theory``.

    With ``tol`` the row is also a check: ``passed = |ratio - 1| <= tol``; with ``upper=True``
    the check is ``measured <= theory`` (a bound). Otherwise ``passed`` is ``None``.

    Examples
    --------
    >>> row = summary_row("rate", "D=2", 2.0, 1.0, tol=0.1)
    >>> row["ratio"], row["passed"]
    (0.5, False)
    >>> summary_row("gap / bound", "D=3", 1.0, 0.2, upper=True)["passed"]
    True
    """
    theory, measured = float(theory), float(measured)
    ratio = measured / theory if theory != 0 and np.isfinite(theory) else float("nan")
    passed = None
    if upper:
        passed = bool(measured <= theory)
    elif tol is not None:
        passed = bool(abs(ratio - 1.0) <= tol)
    return {
        "quantity": quantity,
        "setting": setting,
        "theory": theory,
        "measured": measured,
        "ratio": ratio,
        "note": note,
        "passed": passed,
        "tol": tol,
    }


@dataclass(frozen=True)
class FigureResult:
    """Outcome of :func:`render`: where the files are, whether the data came from the cache."""

    name: str
    data_path: Path
    pdf: Path
    png: Path
    cached: bool
    seconds: float
    data: dict[str, np.ndarray]


class _Registry(Mapping):
    """Read-only name -> :class:`FigureSpec` map; modules are imported on first access."""

    def __init__(self, modules: Iterable[str]) -> None:
        self._modules = tuple(modules)
        self._specs: dict[str, FigureSpec] | None = None

    def _load(self) -> dict[str, FigureSpec]:
        if self._specs is None:
            specs = {}
            for mod in self._modules:
                spec = importlib.import_module(f"{__package__}.{mod}").SPEC
                specs[spec.name] = spec
            self._specs = specs
        return self._specs

    def __getitem__(self, name: str) -> FigureSpec:
        return self._load()[name]

    def __iter__(self):
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


#: All figures, in report order.
FIGURES: Mapping[str, FigureSpec] = _Registry(FIGURE_MODULES)


def get_spec(name: str) -> FigureSpec:
    """The spec called ``name``; an unknown name lists the valid ones."""
    if name not in FIGURES:
        valid = ", ".join(repr(k) for k in FIGURES)
        raise InvalidParameterError(f"Unknown figure {name!r}. Valid: {valid}.")
    return FIGURES[name]


def config_to_dict(config: Any) -> dict:
    """A JSON-serialisable dict of a (frozen dataclass or mapping) configuration."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        raw = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        raise InvalidParameterError(
            f"`config` must be a dataclass instance or a mapping; got {type(config).__name__}."
        )
    return json.loads(json.dumps(raw, sort_keys=True, default=_jsonable))


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def code_fingerprint(fn: Callable) -> str:
    """SHA-256 (12 hex digits) of the source file defining ``fn`` ("" if unavailable), so that
    editing a figure's code invalidates its cached data."""
    import inspect

    try:
        src = inspect.getsource(inspect.getmodule(fn))
    except (OSError, TypeError):
        return ""
    return hashlib.sha256(src.encode()).hexdigest()[:12]


def config_hash(name: str, config: Any, code: str = "") -> str:
    """12 hex digits of SHA-256 over the name, the configuration, the dgating version and an
    optional code fingerprint.

    Examples
    --------
    >>> config_hash("x", {"a": 1}) == config_hash("x", {"a": 1})
    True
    >>> config_hash("x", {"a": 1}) == config_hash("x", {"a": 2})
    False
    """
    from .. import __version__

    blob = json.dumps(
        {"name": name, "config": config_to_dict(config), "version": __version__, "code": code},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def save_npz(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` (arrays, numbers, strings) to ``path`` atomically, without pickles."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in data.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise InvalidParameterError(f"data key {k!r} must be a numeric or string array.")
    with atomic_target(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save_npz`."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def compute_cached(
    name: str,
    compute: Callable[[Any], Mapping[str, Any]],
    config: Any,
    data_dir: str | Path,
    *,
    force: bool = False,
) -> tuple[dict[str, np.ndarray], Path, bool]:
    """Return ``(data, path, cached)``: ``compute(config)`` loaded from or saved to
    ``data_dir/<name>-<hash>.npz``; ``force`` recomputes."""
    key = config_hash(name, config, code_fingerprint(compute))
    path = Path(data_dir) / f"{name}-{key}.npz"
    if path.is_file() and not force:
        try:
            return load_npz(path), path, True
        except (OSError, ValueError, zipfile.BadZipFile):  # truncated or foreign: recompute
            pass
    data = compute(config)
    save_npz(path, data)
    # Reload so that callers see exactly what a later cached run sees.
    return load_npz(path), path, False


def render(
    spec: FigureSpec | str,
    out: str | Path,
    *,
    quick: bool = False,
    force: bool = False,
    config: Any = None,
    data_dir: str | Path | None = None,
) -> FigureResult:
    """Compute (or load) the data of ``spec`` and write ``<out>/<name>.pdf`` and ``.png``.

    Parameters
    ----------
    spec : FigureSpec or str
        The figure or its registry name.
    out : path
        Output folder (created).
    quick : bool, default=False
        Use ``spec.quick_config`` instead of ``spec.config``.
    force : bool, default=False
        Recompute even if cached data exist.
    config : optional
        Overrides both configurations.
    data_dir : path, optional
        Folder of the cached ``.npz`` data (default ``<out>/data``).
    """
    from ._style import save_figure, style

    spec = get_spec(spec) if isinstance(spec, str) else spec
    out = Path(out)
    cfg = config if config is not None else (spec.quick_config if quick else spec.config)
    start = time.perf_counter()
    data_dir = out / "data" if data_dir is None else Path(data_dir)
    data, path, cached = compute_cached(spec.name, spec.compute, cfg, data_dir, force=force)
    with style():
        fig = spec.plot(data)
        pdf, png = save_figure(fig, out / spec.name)
    return FigureResult(spec.name, path, pdf, png, cached, time.perf_counter() - start, data)


def render_all(
    out: str | Path,
    *,
    only: Iterable[str] | None = None,
    quick: bool = False,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[FigureResult]:
    """Render the figures named in ``only`` (all by default), in registry order.

    Files go to ``<out>/figures`` and data to ``<out>/data``, the layout of ``dgating
    reproduce``, so the two commands share one cache.
    """
    names = list(FIGURES) if not only else [get_spec(n).name for n in only]
    results = []
    for name in names:
        res = render(
            name, Path(out) / "figures", quick=quick, force=force, data_dir=Path(out) / "data"
        )
        if progress is not None:
            src = "cached" if res.cached else "computed"
            progress(f"{FIGURES[name].label:>3} {name:<22} {res.seconds:7.2f} s ({src})")
        results.append(res)
    return results
