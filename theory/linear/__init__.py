"""Exact infinite-width theory of deep LINEAR networks (docs/theory.md sections 4 and 5): no sampling.

Modules:
    solver        the derivation; ``core`` (march + assembly at ``eps``) and ``solve_linear``
    march         the time march of the linear DMFT, row by row (NumPy or torch backend)
    assemble      the full two-time ``H^l`` kernels from the march state
    check         a-posteriori check: one whole-trajectory pass of the fixed-point map
    perturbative  leading-order perturbation theory by forward-mode autodiff in ``gamma0^2``

Use it through ``theory.solve``, which validates the options and dispatches the schemes.
"""

from .assemble import assemble
from .check import residual
from .march import MarchState, intra_op_threads, march
from .perturbative import second_order, solve_perturbative
from .solver import BLOWUP, DEFAULT_TOL, core, native_responses, solve_linear

__all__ = [
    "BLOWUP",
    "DEFAULT_TOL",
    "MarchState",
    "assemble",
    "core",
    "intra_op_threads",
    "march",
    "native_responses",
    "residual",
    "second_order",
    "solve_linear",
    "solve_perturbative",
]
