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
    march       the linearised map of sites solved in one pass over time (Monte Carlo, linear)
    quadrature  exact quadrature sites of a deep linear network, for the march
    propagate   the shared engine: noise through the linearised DMFT (plain or two-level)
    estimate    estimators of N Cov from propagated directions, with standard errors
    lazy        gamma0 -> 0: static random kernels, closed forms
    linear      deep linear networks: exact (Gaussian sites, Wick noise, algebraic map)

Building blocks re-exported for tests and new methods: ``Layout``, ``LinearModel``, ``propagate``
(the engine) and ``probe`` (the check of a solved chunk by a sweep of the model's own map).
    montecarlo  nonlinear networks: sampled sites, pathwise tangents with common random numbers
"""

from .base import Method, fluctuations, resolve_method
from .estimate import multilevel_variance
from .factor import Causal, CausalRange, Root
from .identity import Identity
from .layout import Layout
from .linear import LinearModel
from .propagate import probe, propagate
from .result import Fluctuations, Spread

__all__ = ["Causal", "CausalRange", "Fluctuations", "Identity", "Layout", "LinearModel", "Method", "Root", "Spread",
           "fluctuations", "multilevel_variance", "probe", "propagate"]
