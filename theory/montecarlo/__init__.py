"""The Monte Carlo solver of the nonlinear DMFT (docs/theory.md section 2): alternating sampling of
the single-site fields and estimation of the kernels, to a self-consistent fixed point.

Modules:
    solver        entry point: whole-trajectory iteration, time-marching fallback, the Solution
    loop          the fixed-point loop (state, stopping rule, statuses, ``Core`` result)
    setup         what one run holds fixed (``Setup``) and what it iterates (``Iterate``)
    sweep         one sweep: each layer's pass (sources, fields, kernels, Jacobians, output)
    responses     bookkeeping of the responses: refresh schedule, check, running mean
    march         time-marching in blocks with the accepted prefix frozen, in replicas
    perturbative  leading-order perturbation theory with common random numbers
    sampling      Gaussian sources: PSD factorisations and draws
    fields        the causal field equations of one layer, forward in time, and their tangents
    jacobians     exact pathwise response Jacobians, blocked by causality
    control       control variates for the kernel estimates (lazy, linearized)
    estimators    second moments with control variates and split-half errors
    mehler        Gaussian pair moments by Mehler's series
    outputs       output dynamics marched in time (the exact discrete-time update)
    errors        standard errors of the returned observables

Use it through ``theory.solve`` (``method="montecarlo"`` runs it on linear networks too). The
field helpers are public for code that draws the single-site process from a solution
(e.g. the preactivation densities of the paper report).
"""

from .control import Linearization, estimate_kernels
from .errors import IterateSpread
from .fields import coupling, solve_fields, tangent_fields
from .jacobians import causal_jacobians, split_half_jacobians
from .loop import NOISE_MAX, RESIDUAL_MAX, Core, LoopOptions, run_iterations
from .march import BLOCKS, REPLICAS, solve_marching
from .mehler import mehler_matrix, pair_moments
from .perturbative import STEP, solve_perturbative_mc
from .sampling import constant_in_time_factor, draw, factor_psd, ones_factor, psd_project, symmetric_sqrt
from .solver import AUTO_MARCH_MAX_N, MARCH, solve_mc

__all__ = [
    "AUTO_MARCH_MAX_N", "BLOCKS", "Core", "IterateSpread", "Linearization", "LoopOptions", "MARCH",
    "NOISE_MAX", "REPLICAS", "RESIDUAL_MAX", "STEP", "causal_jacobians", "constant_in_time_factor",
    "coupling", "draw", "estimate_kernels", "factor_psd", "mehler_matrix", "ones_factor",
    "pair_moments", "psd_project", "run_iterations", "solve_fields", "solve_marching", "solve_mc",
    "solve_perturbative_mc", "split_half_jacobians", "symmetric_sqrt", "tangent_fields",
]
