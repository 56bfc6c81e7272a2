"""The figure registry: one smoke test per figure (Agg, quick config), caching, validation."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import numpy as np
import pytest

from dgating._validation import InvalidParameterError
from dgating.figures import registry
from dgating.figures.registry import FIGURE_MODULES, FIGURES, FigureSpec, render

matplotlib.use("Agg")

#: Data keys each figure promises in its compute docstring (the contract the report relies on).
EXPECTED_KEYS = {
    "penalty_geometry": {"depths", "imbalances", "grid", "penalty", "gated", "profile"},
    "imbalance_decay": {
        "depth",
        "lam",
        "t",
        "imbalance_sum",
        "theory_sum",
        "theory_rate",
        "measured_rate",
    },
    "gap": {
        "depths",
        "t",
        "gap",
        "bound",
        "gap_groups",
        "nonzero",
        "theory_rates",
        "measured_rates",
    },
    "group_norms": {"depths", "t", "norms", "n_active", "imbalance", "vanishing"},
    "subgradient": {
        "depths",
        "t_flow",
        "t_prox",
        "t_subgradient",
        "subopt_flow",
        "subopt_prox",
        "subopt_subgradient",
    },
    "paths": {"depths", "lams", "norms_prox", "norms_gated", "obj_prox", "obj_gated"},
    "correspondence": {
        "problem",
        "depth",
        "distance",
        "objective_gated",
        "objective_prox",
        "certified_gated",
        "certified_prox",
    },
    "sgd": {"steps", "imbalance", "theory_factor", "measured_factor", "etas", "steady_imbalance"},
    "rates": {"depths", "lams", "imbalance", "surviving", "vanishing"},
    "nn_tradeoff": {"dataset", "method", "depth", "lam", "sparsity", "accuracy"},
}


def test_registry_lists_every_figure_module_once():
    assert len(FIGURES) == len(FIGURE_MODULES) == 10
    assert set(FIGURES) == set(EXPECTED_KEYS)
    labels = [spec.label for spec in FIGURES.values()]
    assert labels == [f"F{i}" for i in range(1, 11)]


@pytest.mark.parametrize("name", list(EXPECTED_KEYS))
def test_spec_has_title_claim_and_two_configs(name):
    spec = FIGURES[name]
    assert spec.title and spec.claim and len(spec.claim) > 80
    assert spec.config is not None and spec.quick_config is not None
    assert registry.config_hash(name, spec.config) != registry.config_hash(name, spec.quick_config)


@pytest.mark.parametrize("name", list(EXPECTED_KEYS))
def test_figure_smoke(name, quick_figures):
    from matplotlib.figure import Figure

    res = quick_figures[name]  # rendered once per session, into a fresh folder
    assert EXPECTED_KEYS[name] <= set(res.data)
    for path in (res.pdf, res.png, res.data_path):
        assert path.is_file() and path.stat().st_size > 0
    assert res.pdf.read_bytes()[:4] == b"%PDF"
    assert res.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not res.cached
    assert isinstance(FIGURES[name].plot(res.data), Figure)
    if FIGURES[name].summary is not None:
        for row in FIGURES[name].summary(res.data):
            assert {"quantity", "setting", "theory", "measured", "ratio", "passed"} <= set(row)


@dataclass(frozen=True)
class _Cfg:
    n: int = 3
    seed: int = 0


def _counting_spec(calls: list) -> FigureSpec:
    def compute(cfg: _Cfg) -> dict:
        calls.append(cfg)
        return {"x": np.arange(cfg.n, dtype=float), "label": np.array(["a"] * cfg.n)}

    def plot(data, ax=None):
        from dgating.figures._style import axes_or_new

        fig, (a,) = axes_or_new(ax, 1)
        a.plot(data["x"])
        return fig

    return FigureSpec("toy", compute, plot, _Cfg(2), _Cfg(), "F0", "Toy", "A toy figure.")


def test_render_reuses_cache_and_force_recomputes(tmp_path):
    calls: list = []
    spec = _counting_spec(calls)
    first = render(spec, tmp_path)
    second = render(spec, tmp_path)
    assert (first.cached, second.cached) == (False, True)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.data["x"], second.data["x"])
    assert second.data["label"].tolist() == ["a", "a", "a"]
    # Negative control: another configuration, or force, computes again.
    assert not render(spec, tmp_path, quick=True).cached
    assert not render(spec, tmp_path, force=True).cached
    assert len(calls) == 3


def test_config_hash_depends_on_config_and_code():
    a = registry.config_hash("toy", _Cfg())
    assert a == registry.config_hash("toy", _Cfg())
    assert a != registry.config_hash("toy", _Cfg(seed=1))
    assert a != registry.config_hash("toy", _Cfg(), code="abc")
    assert a != registry.config_hash("other", _Cfg())


def test_unknown_figure_lists_valid_names():
    with pytest.raises(InvalidParameterError, match=r"Unknown figure 'nope'\. Valid: .*'gap'"):
        registry.get_spec("nope")


def test_config_must_be_dataclass_or_mapping():
    with pytest.raises(InvalidParameterError, match="`config` must be a dataclass"):
        registry.config_to_dict(3)


def test_axes_or_new_checks_the_number_of_axes():
    from dgating.figures._style import axes_or_new, new_figure

    fig, axes = new_figure(1, 2)
    got_fig, got = axes_or_new(axes, 2)
    assert got_fig is fig and len(got) == 2
    with pytest.raises(InvalidParameterError, match="`ax` must hold 3 Axes"):
        axes_or_new(axes, 3)


def test_style_does_not_touch_global_rcparams():
    before = dict(matplotlib.rcParams)
    from dgating.figures._style import style

    with style():
        assert matplotlib.rcParams["axes.spines.top"] is False
    assert dict(matplotlib.rcParams) == before
