"""Real networks at finite width (docs/theory.md section 1): train, record, sweep.

    from simulate import train
    run = train(problem, width=1024, seeds=8)     # Trajectories, leading seed axis

Also: :mod:`simulate.data` (Gaussian, CIFAR-10, digits), :mod:`simulate.cnn` (the Fig. 4 CNN),
:mod:`simulate.sweep` (grids of widths x seeds x gamma0, and any other job, on any Executor,
cached on disk).

Modules:
    train         ``train``: full-batch gradient descent on S networks of one width, batched over seeds
    inputs        the checked inputs of ``train``, its kernel modes and memory plan
    mlp           the forward/backward/update maths of the MLP (mean-field parameterisation)
    trajectories  ``Trajectories``: the result of ``train``, with a leading seed axis
    cnn           the mean-field CNN of the paper's Fig. 4, trained by SGD
    data          data sets: Gaussian, CIFAR-10, scikit-learn digits
    sweep         jobs (``Job``, ``grid``) and ``run_sweep`` on any Executor with the cache
    executors     executors by name (serial, processes[:N], dask[:N], dask://HOST:PORT)
    cache         the on-disk cache (tensors-only .npz entries)
    atomic        the one atomic write of files and folders, and the cleanup after killed writers
    identity      digests of values and code for cache keys
"""

from .cnn import CNNConfig, CNNRun, train_cnn
from .data import Dataset, cifar10, digits, gaussian
from .atomic import STALE_AFTER_S, atomic_folder, atomic_write, clean_stale, temp_name
from .cache import Cache, CacheWarning, default_folder
from .executors import ExecutorSpec, available_cores, open_executor
from .sweep import Job, Task, grid, run_sweep
from .trajectories import OBSERVABLES, DivergenceError, Trajectories
from .inputs import KERNEL_MODES, check_device
from .train import train

__all__ = [
    "KERNEL_MODES",
    "STALE_AFTER_S",
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
    "atomic_folder",
    "atomic_write",
    "clean_stale",
    "temp_name",
    "available_cores",
    "default_folder",
    "grid",
    "open_executor",
    "run_sweep",
]
