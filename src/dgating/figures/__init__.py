r"""Theory figures F1-F10 and the reproduction report.

Each figure is a :class:`FigureSpec` in :data:`FIGURES`: a pure ``compute(config) -> dict`` whose
result is cached as ``.npz`` (keyed by a hash of the configuration and the figure's code), a
``plot(data, ax=None) -> Figure`` drawn in one colour-blind safe style, a default and a quick
configuration, and optionally ``summary(data)`` rows of theory against measurement.

=====  ==================  ==============================================================
label  name                claim
=====  ==================  ==============================================================
F1     penalty_geometry    L_{2,2/D} balls; smooth ridge-like gated penalty at imbalance
F2     imbalance_decay     imbalance decays exactly like exp(-4 lam t / D)
F3     gap                 L - L_w below its bound; per-class asymptotic rates
F4     group_norms         non-sparse -> sparse transition along the flow
F5     subgradient         subgradient oscillates; D-Gating and prox converge
F6     paths               regularisation paths of the gated and proximal routes agree
F7     correspondence      both routes' minimisers are certified local minima of L_w
F8     sgd                 SGD: geometric imbalance decay, steady state of order eta
F9     rates               measured / theoretical rates over a (D, lam) grid
F10    nn_tradeoff         sparsity-accuracy trade-offs on digits and wine
=====  ==================  ==============================================================

Command line: ``dgating figures [--only NAME ...] [--out DIR] [--quick] [--force]`` and
``dgating reproduce [--out DIR] [--quick] [--force]`` (:func:`reproduce`).

Examples
--------
>>> from dgating.figures import FIGURES
>>> FIGURES["imbalance_decay"].label
'F2'
"""

from ._reproduce import ReproduceResult, reproduce
from .registry import (
    FIGURES,
    FigureResult,
    FigureSpec,
    compute_cached,
    get_spec,
    render,
    render_all,
    summary_row,
)

__all__ = [
    "FIGURES",
    "FigureResult",
    "FigureSpec",
    "ReproduceResult",
    "compute_cached",
    "get_spec",
    "render",
    "render_all",
    "reproduce",
    "summary_row",
]
