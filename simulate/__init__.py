"""Real networks at finite width (THEORY.md section 1): train, record, sweep.

    from simulate import train
    run = train(problem, width=1024, seeds=8)     # Trajectories, leading seed axis
"""

from .trajectories import OBSERVABLES, DivergenceError, Trajectories
from .train import train

__all__ = ["OBSERVABLES", "DivergenceError", "Trajectories", "train"]
