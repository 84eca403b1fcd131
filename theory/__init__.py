"""Infinite-width predictions (THEORY.md): pure math on tensors, no training code.

    from theory import Problem, solve
    sol = solve(Problem(x, y, depth=3, activation="tanh", gamma0=1.0, eta=0.1, steps=100))
"""

from .activations import Activation, activation_names, get_activation
from .fluctuations import fluctuations
from .lazy import LazyKernels, gaussian_moments, lazy_dynamics, lazy_kernels
from .problem import Problem
from .solution import Solution, SolverError, Status
from .solve import Scheme, Update, solve

__all__ = [
    "Activation",
    "LazyKernels",
    "Problem",
    "Scheme",
    "Solution",
    "SolverError",
    "Status",
    "Update",
    "activation_names",
    "fluctuations",
    "gaussian_moments",
    "get_activation",
    "lazy_dynamics",
    "lazy_kernels",
    "solve",
]
