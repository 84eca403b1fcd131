"""Everything ``theory.fluctuations`` takes from the rest of ``theory``, in one place.

The fluctuation methods linearise around an infinite-width :class:`theory.Solution`; they need
the problem definition, the front door ``solve``, the lazy kernels, and (for nonlinear networks)
the single-site field solver and the causal coupling matrices of the Monte Carlo solver. A
restructuring of ``theory`` changes the import lines below and nothing else in this package.

Responses: every solver returns them in the one layout documented on :class:`theory.Solution`
(``docs/finite_width.md`` section 4 uses them): ``response_a[l-1] = A^l``,
``response_b[l-1] = B^l``, each (T+1, P_all, T+1, P_all), l = 1..L-1. In a linear network they
are broadcast views: ``B^l`` is the same for every row point ``mu`` and ``A^l`` is the response
to the common source spread evenly over ``nu`` (``A(k, mu; s, nu) = A(k, mu; s) / P_all``).
"""

from __future__ import annotations

import torch

from ..activations import Activation
from ..lazy import gaussian_moments, lazy_dynamics, lazy_kernels
from ..montecarlo import coupling, solve_fields
from ..problem import Problem
from ..solution import Solution, SolverError, Status, check_fields
from ..solve import solve

__all__ = [
    "Activation",
    "Problem",
    "Solution",
    "SolverError",
    "Status",
    "check_fields",
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
    ``l = 1 .. L-1``. ``n = (T+1) P_all``, ``m = T+1``: the backward fields of a linear network
    carry no point index, so ``A`` is the common layout summed over ``nu`` and ``B`` its row at
    any one ``mu`` (the first).
    """
    m, pa = sol.problem.steps + 1, sol.problem.n_points
    if not 1 <= layer <= sol.problem.depth - 1 or sol.response_a is None:
        return None, None
    return (sol.response_a[layer - 1].sum(-1).reshape(m * pa, m),
            sol.response_b[layer - 1][:, 0].reshape(m, m * pa))


def mc_responses(sol: Solution, layer: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(A^layer, B^layer)``, each (n, n) indexed ``[(k, mu), (s, nu)]``, of any solution with
    responses (the common layout flattened; a linear one's broadcast views act identically on
    point-independent fields). None past the ends."""
    n = (sol.problem.steps + 1) * sol.problem.n_points
    if not 1 <= layer <= sol.problem.depth - 1 or sol.response_a is None:
        return None, None
    return sol.response_a[layer - 1].reshape(n, n), sol.response_b[layer - 1].reshape(n, n)
