"""The jobs a validation run submits (``simulate.sweep.Task``): theory solves, MLP ensembles, CNN runs.

Each job is plain data with a key over everything that changes its result (problem identity with
the code of a custom activation, width, seeds, seed, device, solver options, the identity of the
solver or trainer and the source of the code it runs). Its worker side computes the result and
packs it as a ``simulate.cache.Record``; ``decode`` turns the record into what the checks read.
Every result goes through its record, cached or not, wherever it ran.

What is stored (the checks read no more):

- ``SolveTask``: the whole ``theory.Solution`` in its own dtype (float64): it is the reference.
  Only Monte Carlo solves (nonlinear activation, gamma0 > 0, scheme other than ntk) go to the
  disk cache: the exact solvers take well under a second and their two-time kernels would
  dominate the cache.
- ``EnsembleTask``: losses and outputs in float64; the NTK and the *equal-time* kernels
  ``Phi^l(t, t)``, ``G^l(t, t)`` in float32, two-time kernels only when asked for
  (``two_time=True``). float32 rounds a kernel by 6e-8 relative, four orders of magnitude below
  the seed noise of any ensemble a check can decide with (the default suite's smallest relative
  standard errors are about 1e-3), and it halves the size; the equal-time kernels are
  ``(T+1)`` times smaller than the two-time ones (a default run writes about 100 MB instead of
  3.6 GB). A trainer that takes the keyword ``kernels`` (``simulate.train`` does) is asked for
  ``kernels="equal_time"`` unless two-time kernels are wanted, so it skips the two-time Gram
  matrices as well.
- ``CNNTask``: the evaluation curves of ``simulate.cnn.train_cnn`` (small).
- ``FluctuationTask``: ``theory.fluctuations`` (``N Var`` of every observable, with its Monte
  Carlo standard errors) together with the whole infinite-width Solution it linearised around
  (the reference of the ensemble means); cached unless the method is the (instant) lazy one.

Modules:
    key          ``job_key``: specification + problem and callable identities -> cache key
    solve        ``SolveTask`` (theory solves) and the packing of a ``theory.Solution``
    ensemble     ``EnsembleTask`` and ``Ensemble`` (MLP ensembles as the checks read them)
    cnn          ``CNNTask`` (CNN evaluation curves)
    fluctuation  ``FluctuationTask`` and ``Prediction`` (finite-width predictions)
"""

from .cnn import CNN_FIELDS, CNN_SOURCES, CNNTask, cnn_record
from .ensemble import KERNEL_DTYPE, Ensemble, EnsembleTask, ensemble_record, takes_keyword
from .fluctuation import (PREDICTED, FluctuationTask, Prediction, default_predictor, fluctuation_method,
                          fluctuation_record)
from .key import job_key
from .solve import SolveTask, pack_solution, solve_record, unpack_solution

__all__ = [
    "CNN_FIELDS", "CNN_SOURCES", "CNNTask", "Ensemble", "EnsembleTask", "FluctuationTask", "KERNEL_DTYPE",
    "PREDICTED", "Prediction", "SolveTask", "cnn_record", "default_predictor", "ensemble_record",
    "fluctuation_method", "fluctuation_record", "job_key", "pack_solution", "solve_record",
    "takes_keyword", "unpack_solution",
]
