r"""Gradient flow and (S)GD on the gated objective, measured rates, and sweeps.

* :func:`integrate_flow` / :func:`integrate_flows`: the flow :math:`\dot z = -\nabla L(z)` with the
  scipy reference backend or the batched torch engine (many configurations at once, one adaptive
  step per configuration); results are :class:`FlowResult` trajectories of :math:`L`, :math:`L_w`,
  the gap, the imbalances, the group norms and the support.
* :func:`measure_rate` and :func:`flow_rates`: exponential rates with automatic fit windows, against
  :func:`theory_rates` (:math:`4\lambda/D` for the imbalance; :math:`8\lambda/D` for the gap of
  surviving groups; :math:`4\lambda/D` (:math:`D\ge3`) or :math:`2\lambda + 2g` (:math:`D=2`) for
  vanishing groups).
* :func:`run_sgd`: GD/SGD with the exact per-step imbalance recursion of docs/theory.md [T-sgd].
* :func:`sparse_transition`, :func:`compare_paths`: entry into the sparse regime, and proximal
  gradient / subgradient baselines on :math:`L_w`.
* :func:`run_sweep`: resumable, parallel (processes or dask) sweeps over a :class:`SweepConfig`.
"""

from .discrete import DiscreteResult, imbalance_contraction, run_sgd, steady_state_imbalance
from .flow import FlowResult, gap_per_group, initial_params, integrate_flow, integrate_flows, record
from .rates import (
    FlowRates,
    RateEstimate,
    classify_groups,
    flow_rates,
    gap_bound,
    measure_rate,
    theory_rates,
)
from .sweep import (
    DEFAULT_SWEEP,
    QUICK_SWEEP,
    Configuration,
    SweepConfig,
    SweepResult,
    load_sweep_config,
    make_problem,
    rate_grid,
    run_configuration,
    run_sweep,
)
from .transition import (
    PathResult,
    TransitionResult,
    compare_paths,
    prox_gradient_path,
    sparse_transition,
    subgradient_path,
)

__all__ = [
    "DEFAULT_SWEEP",
    "QUICK_SWEEP",
    "Configuration",
    "DiscreteResult",
    "FlowRates",
    "FlowResult",
    "PathResult",
    "RateEstimate",
    "SweepConfig",
    "SweepResult",
    "TransitionResult",
    "classify_groups",
    "compare_paths",
    "flow_rates",
    "gap_bound",
    "gap_per_group",
    "imbalance_contraction",
    "initial_params",
    "integrate_flow",
    "integrate_flows",
    "load_sweep_config",
    "make_problem",
    "measure_rate",
    "prox_gradient_path",
    "rate_grid",
    "record",
    "run_configuration",
    "run_sgd",
    "run_sweep",
    "sparse_transition",
    "steady_state_imbalance",
    "subgradient_path",
    "theory_rates",
]
