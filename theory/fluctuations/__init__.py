"""Finite-width fluctuations: leading-order ``N * Var`` of every observable (issue 13).

    from theory import fluctuations
    fl = fluctuations(problem)          # method "auto": lazy, linear or montecarlo
    fl.loss, fl.ntk, fl.std(1024).loss

The derivation is ``docs/finite_width.md``. Modules:
    base        the front door ``fluctuations`` (method dispatch, option checks)
    result      the :class:`Fluctuations` result and its ``std(width)``
    interface   everything taken from the rest of ``theory`` (one place to rebase)
    layout      index layout and gradient-descent couplings shared by the methods
    identity    finite-width response functions from the transpose identity
    factor      source factors F F^T = Sigma (symmetric root, causal) and their tangents
    march       the Monte Carlo linearised map solved in one pass over time
    propagate   the shared engine: noise through the linearised DMFT (plain or two-level)
    estimate    estimators of N Cov from propagated directions, with standard errors
    lazy        gamma0 -> 0: static random kernels, closed forms
    linear      deep linear networks: exact (Gaussian sites, Wick noise, algebraic map)
    montecarlo  nonlinear networks: sampled sites, pathwise tangents with common random numbers
"""

from .base import Method, fluctuations, resolve_method
from .estimate import multilevel_variance
from .factor import Causal, Root
from .identity import Identity
from .result import Fluctuations, Spread

__all__ = ["Causal", "Fluctuations", "Identity", "Method", "Root", "Spread", "fluctuations",
           "multilevel_variance"]
