"""Real networks at finite width (THEORY.md section 1): train, record, sweep.

    from simulate import train
    run = train(problem, width=1024, seeds=8)     # Trajectories, leading seed axis

Also: :mod:`simulate.data` (Gaussian, CIFAR-10, digits), :mod:`simulate.cnn` (the Fig. 4 CNN),
:mod:`simulate.sweep` (grids of widths x seeds x gamma0, and any other job, on any Executor,
cached on disk).

Modules:
    train         ``train``: full-batch gradient descent on S networks of one width, batched over seeds
    mlp           the forward/backward/update maths of the MLP (mean-field parameterisation)
    trajectories  ``Trajectories``: the result of ``train``, with a leading seed axis
    cnn           the mean-field CNN of the paper's Fig. 4, trained by SGD
    data          data sets: Gaussian, CIFAR-10, scikit-learn digits
    sweep         jobs (``Job``, ``grid``) and ``run_sweep`` on any Executor with the cache
    executors     executors by name (serial, processes[:N], dask[:N], dask://HOST:PORT)
    cache         the on-disk cache (tensors-only .npz entries) and the one atomic write
    identity      digests of values and code for cache keys
"""

from .cnn import CNNConfig, CNNRun, train_cnn
from .data import Dataset, cifar10, digits, gaussian
from .cache import Cache, CacheWarning, atomic_write, default_folder
from .executors import ExecutorSpec, available_cores, open_executor
from .sweep import Job, Task, grid, run_sweep
from .trajectories import OBSERVABLES, DivergenceError, Trajectories
from .train import check_device, train

__all__ = [
    "CNNConfig",
    "CNNRun",
    "Dataset",
    "DivergenceError",
    "OBSERVABLES",
    "Trajectories",
    "check_device",
    "cifar10",
    "digits",
    "gaussian",
    "train",
    "train_cnn",
    "Cache",
    "CacheWarning",
    "ExecutorSpec",
    "Job",
    "Task",
    "atomic_write",
    "available_cores",
    "default_folder",
    "grid",
    "open_executor",
    "run_sweep",
]
