"""Real networks at finite width (THEORY.md section 1): train, record, sweep.

    from simulate import train
    run = train(problem, width=1024, seeds=8)     # Trajectories, leading seed axis

Also: :mod:`simulate.data` (Gaussian, CIFAR-10, digits), :mod:`simulate.cnn` (the Fig. 4 CNN),
:mod:`simulate.sweep` (grids of widths x seeds x gamma0 on any Executor, cached on disk).
"""

from .cnn import CNNConfig, CNNRun, train_cnn
from .data import Dataset, cifar10, digits, gaussian
from .sweep import Job, grid, run_sweep
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
    "Job",
    "grid",
    "run_sweep",
]
