"""Mechanical figure checks, after drawing, on every registered figure (quick configs, Agg).

(a) no text is clipped by the canvas, (b) no legend covers data, (c) no colour bar saturates,
(d) labelled artists are explained by a legend, (e) no axis has a lone tick label, (f) no two
texts of an axes collide. Each check has
a negative control: a deliberately broken figure that the check must flag.
"""

from __future__ import annotations

import numpy as np
import pytest

from dgating.figures._style import new_figure
from dgating.figures.registry import FIGURES

from .layout import (
    all_problems,
    clipped_text,
    colliding_text,
    draw,
    legend_overlaps,
    lonely_tick_labels,
    saturated_colorbars,
    unexplained_artists,
)


@pytest.mark.parametrize("name", list(FIGURES))
def test_registered_figure_passes_every_layout_check(name, quick_figures):
    fig = FIGURES[name].plot(quick_figures[name].data)
    assert all_problems(fig) == []


def test_clipped_title_is_flagged():
    fig, axes = new_figure(1, 2, width=4.0)
    axes[0, 0].plot([0, 1], [0, 1])
    axes[0, 1].set_title("a title far too long for half of a four-inch-wide figure to hold")
    problems = clipped_text(fig, draw(fig))
    assert len(problems) == 1 and "far too long" in problems[0]
    # Control of the control: a short title passes.
    axes[0, 1].set_title("short")
    assert clipped_text(fig, draw(fig)) == []


def test_text_placed_off_the_canvas_is_flagged():
    fig, axes = new_figure()
    axes[0, 0].text(1.5, 0.5, "outside", transform=axes[0, 0].transAxes)
    problems = clipped_text(fig, draw(fig))
    assert len(problems) == 1 and problems[0].startswith("text 'outside' extends past the canvas")


def test_legend_over_a_line_is_flagged():
    fig, axes = new_figure()
    a = axes[0, 0]
    t = np.linspace(0.0, 1.0, 50)
    a.plot(t, 1.0 - t, label="falling")  # passes through the upper left corner
    a.plot(t, 0.5 + 0 * t, label="flat")
    a.legend(loc="upper left")
    problems = legend_overlaps(fig, draw(fig))
    assert problems == ["legend covers Line2D 'falling' in axes 'untitled'"]
    # Control: the same legend below the data, in the figure margin, covers nothing.
    a.get_legend().remove()
    fig.legend(loc="outside lower center", ncols=2)
    assert legend_overlaps(fig, draw(fig)) == []


def test_legend_over_a_segment_between_far_vertices_is_flagged():
    # Two vertices only, both far from the legend: the segment between them crosses it.
    fig, axes = new_figure()
    axes[0, 0].plot([0.0, 1.0], [1.0, 0.0], label="diagonal")
    axes[0, 0].plot([0.0, 1.0], [0.0, 0.0], label="floor")
    axes[0, 0].legend(loc="center")
    assert legend_overlaps(fig, draw(fig)) == ["legend covers Line2D 'diagonal' in axes 'untitled'"]


def test_legend_over_markers_and_bars_is_flagged():
    fig, axes = new_figure(1, 2)
    a, b = axes[0]
    a.scatter([0.05, 0.5, 0.95], [0.95, 0.5, 0.05], label="points")
    a.legend(loc="upper left")
    b.bar([0, 1, 2], [1.0, 1.0, 1.0], label="bars")
    b.legend(loc="upper center")
    problems = legend_overlaps(fig, draw(fig))
    assert any("PathCollection 'points'" in p for p in problems)
    assert any("Rectangle" in p for p in problems)


def test_saturated_colour_bar_is_flagged():
    fig, axes = new_figure()
    grid = np.array([[0.94, 1.0], [1.0, 1.08]])
    im = axes[0, 0].imshow(grid, vmin=0.95, vmax=1.05)
    fig.colorbar(im, ax=axes[0, 0], label="ratio")
    problems = saturated_colorbars(fig)
    assert problems == ["colour bar 'ratio' spans [0.95, 1.05] but the data span [0.94, 1.08]"]
    # Control: a norm that covers the data passes; NaN cells are ignored, not compared.
    im.set_clim(0.9, 1.1)
    im.set_data(np.where(grid > 1.05, np.nan, grid))
    assert saturated_colorbars(fig) == []


def test_labelled_lines_without_a_legend_are_flagged():
    fig, axes = new_figure()
    axes[0, 0].plot([0, 1], label="one")
    axes[0, 0].plot([1, 0], label="two")
    assert unexplained_artists(fig) == ["axes '': labels ['one', 'two'] in no legend"]
    fig.legend()
    assert unexplained_artists(fig) == []


def test_a_lone_tick_label_is_flagged():
    fig, axes = new_figure()
    a = axes[0, 0]
    a.loglog([0.005, 0.04], [1.0, 2.0])  # one decade boundary inside: one major label only
    from matplotlib.ticker import NullFormatter

    a.xaxis.set_minor_formatter(NullFormatter())
    problems = lonely_tick_labels(fig, draw(fig))
    assert problems == ["x-axis of axes '' has one tick label ('$\\\\mathdefault{10^{-2}}$')"]
    a.set_xticks([0.005, 0.01, 0.02, 0.04], ["0.005", "0.01", "0.02", "0.04"])
    assert lonely_tick_labels(fig, draw(fig)) == []


def test_colliding_bar_labels_are_flagged():
    fig, axes = new_figure(width=2.0)
    a = axes[0, 0]
    for i in range(3):  # three narrow bars per group, each labelled: the labels collide
        rects = a.bar(np.arange(3) + (i - 1) * 0.26, [1.0, 1.0, 1.0], 0.26)
        a.bar_label(rects, ["1.00"] * 3, fontsize=6)
    problems = colliding_text(fig, draw(fig))
    assert problems and all("'1.00' overlaps text '1.00'" in p for p in problems)
    # Control: one labelled bar per group leaves room.
    for t in a.texts[3:]:
        t.set_visible(False)
    assert colliding_text(fig, draw(fig)) == []


def test_rates_colour_scale_widens_to_the_largest_deviation(quick_figures):
    # The default sweep's worst D = 2 cell (1.0801) would saturate a fixed +-5 % scale.
    data = dict(quick_figures["rates"].data)
    data["vanishing"] = data["vanishing"].copy()
    data["vanishing"][0, 0] = 1.0801
    fig = FIGURES["rates"].plot(data)
    assert saturated_colorbars(fig) == []
    norm = fig.axes[-1]._colorbar.mappable.norm
    assert (norm.vmin, norm.vmax) == pytest.approx((0.91, 1.09))  # 8.01 % rounds up to 9 %


def test_imbalance_deviation_marks_exact_zeros_instead_of_flooring(quick_figures):
    data = dict(quick_figures["imbalance_decay"].data)
    data["rel_error"] = data["rel_error"].copy()
    data["rel_error"][0, 5] = 0.0
    fig = FIGURES["imbalance_decay"].plot(data)
    right = fig.axes[1]
    first = right.get_lines()[0]
    assert np.isnan(first.get_ydata()[4])  # index 5 of the data; t = 0 is not drawn
    assert np.nanmin(first.get_ydata()) > 0  # no floor value stands in for the zero
    marks = [ln for ln in right.get_lines() if ln.get_marker() == "v"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == data["t"][0, 5]
    assert right.get_legend() is not None
    # Control: without exact zeros there is no marker and no legend.
    fig = FIGURES["imbalance_decay"].plot(quick_figures["imbalance_decay"].data)
    assert not [ln for ln in fig.axes[1].get_lines() if ln.get_marker() == "v"]
    assert fig.axes[1].get_legend() is None
