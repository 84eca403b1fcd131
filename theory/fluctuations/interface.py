"""Everything ``theory.fluctuations`` takes from the rest of ``theory``, in one place.

The fluctuation methods linearise around an infinite-width :class:`theory.Solution`; they need
the problem definition, the front door ``solve``, the lazy kernels, and (for nonlinear networks)
the single-site field solver and the causal coupling matrices of the Monte Carlo solver. A
restructuring of ``theory`` changes the import lines below and nothing else in this package.

Response layouts, as the solvers return them (``docs/finite_width.md`` section 4 uses them):
    linear (``theory.linear``):   response_a[i] = A^{i+1}, (T+1, P_all, T+1);
                                  response_b[i] = B^i,     (T+1, T+1, P_all), i = 0..L-1
    Monte Carlo (``theory.montecarlo``): response_a[i] = A^{i+1}, response_b[i] = B^{i+1},
                                  each (T+1, P_all, T+1, P_all), i = 0..L-2
"""

from __future__ import annotations

import torch

from ..activations import Activation
from ..lazy import gaussian_moments, lazy_dynamics, lazy_kernels
from ..mc_fields import coupling, solve_fields
from ..problem import Problem
from ..solution import Solution, SolverError, Status
from ..solve import solve

__all__ = [
    "Activation",
    "Problem",
    "Solution",
    "SolverError",
    "Status",
    "coupling",
    "gaussian_moments",
    "lazy_dynamics",
    "lazy_kernels",
    "linear_responses",
    "mc_responses",
    "solve",
    "solve_fields",
]


def linear_responses(sol: Solution, layer: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(A^layer (n, m), B^layer (m, n))`` of an exact linear solution (None past the ends).

    ``A^l`` (the response of ``h^l`` to ``r^l``) couples ``g^{l+1}`` into ``h^{l+1}``; ``B^l``
    (the response of ``g^{l+1}`` to ``u^{l+1}``) couples ``h^l`` into ``z^l``. Both exist for
    ``l = 1 .. L-1``. ``n = (T+1) P_all``, ``m = T+1``.
    """
    L = sol.problem.depth
    m, pa = sol.problem.steps + 1, sol.problem.n_points
    if not 1 <= layer <= L - 1 or sol.response_a is None:
        return None, None
    return (sol.response_a[layer - 1].reshape(m * pa, m),
            sol.response_b[layer].reshape(m, m * pa))


def mc_responses(sol: Solution, layer: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(A^layer, B^layer)``, each (n, n) indexed ``[(k, mu), (s, nu)]``, of a Monte Carlo
    solution, or of an exact linear one spread over points (its backward fields carry no point
    index: ``A(k, mu; s, nu) = A(k, mu; s) / P_all``, ``B(k, mu; s, nu) = B(k; s, nu)``, which act
    identically on point-independent fields). None past the ends."""
    L = sol.problem.depth
    m, pa = sol.problem.steps + 1, sol.problem.n_points
    n = m * pa
    if not 1 <= layer <= L - 1 or sol.response_a is None:
        return None, None
    a = sol.response_a[layer - 1]
    if a.ndim == 3:  # linear layout
        a_lin, b_lin = linear_responses(sol, layer)
        a = (a_lin / pa)[:, :, None].expand(n, m, pa).reshape(n, n)
        b = b_lin[:, None, :].expand(m, pa, n).reshape(n, n)
        return a, b
    return a.reshape(n, n), sol.response_b[layer - 1].reshape(n, n)
