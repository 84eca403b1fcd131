"""Infinite-width predictions (docs/theory.md): pure math on tensors, no training code.

    from theory import Problem, solve
    sol = solve(Problem(x, y, depth=3, activation="tanh", gamma0=1.0, eta=0.1, steps=100))

Modules and subpackages:
    problem        ``Problem``, the frozen description of one experiment (validated)
    solve          ``solve``: the one front door; checks the options, dispatches method x scheme
    solution       ``Solution``, ``Status``, ``SolverError`` and the one Solution builder
    activations    activation functions (``phi``, ``phi'``, ``phi''``) by name or object
    lazy           the lazy (gamma0 -> 0) kernels and dynamics, closed forms and quadrature
    divergence     the one rule for "the dynamics diverge" (``DIVERGED`` with its step)
    data           small synthetic data sets
    linear/        exact algebraic solver of deep linear networks and its perturbation theory
    montecarlo/    the Monte Carlo solver of nonlinear networks (and its perturbation theory)
    fluctuations/  finite-width fluctuations around an infinite-width solution

Code outside ``theory`` imports from this face. The one exception is ``simulate``, which names
only the modules of the problem definition (``theory.problem``, ``theory.activations``,
``theory.data``), never a solver.
"""

from .activations import Activation, activation_names, get_activation
from .data import gaussian_data
from .fluctuations import fluctuations
from .fluctuations import resolve_method as fluctuation_method
from .lazy import LazyKernels, gaussian_moments, lazy_dynamics, lazy_kernels
from .problem import Problem
from .solution import Solution, SolverError, Status
from .solve import OPTIONS as SOLVE_OPTIONS
from .solve import Scheme, Update, solve

__all__ = [
    "Activation",
    "LazyKernels",
    "Problem",
    "SOLVE_OPTIONS",
    "Scheme",
    "Solution",
    "SolverError",
    "Status",
    "Update",
    "activation_names",
    "fluctuation_method",
    "fluctuations",
    "gaussian_data",
    "gaussian_moments",
    "get_activation",
    "lazy_dynamics",
    "lazy_kernels",
    "solve",
]
