"""Declarative CNN experiment: the ``model = "cnn"`` form of a claim's or suite's ``problem`` table.

A :class:`CNNSpec` is plain data that builds a two-class image data set (``simulate.data``) and
a ``simulate.cnn.CNNConfig`` for a given channel count N (the grid's widths) and number of seeds.
The CNN has no DMFT solver here: it is used by the width-independence check only (docs/theory.md
section 1: at fixed gamma0 the mean-field limit does not depend on N).
"""

from __future__ import annotations

import dataclasses
from dataclasses import KW_ONLY, dataclass

from .spec import SpecFields

CNN_DATASETS = ("digits", "cifar10")


@dataclass(frozen=True)
class CNNSpec(SpecFields):
    """Data, architecture and schedule of one CNN experiment.

    model "cnn"; data "digits" (scikit-learn 8x8 digits, offline) or "cifar10" (needs ``root``);
    classes: two class indices (the first gets label +1); n_train / n_test: random subsets
    (0 keeps all); data_seed: subset and minibatch order; depth: conv layers; gamma0, eta,
    lr_scaling ("mean_field": lr = eta gamma0^2 N), decay_start (fraction of training after
    which the rate decays linearly to 0; 1.0: constant), batch_size, epochs, eval_every (SGD steps
    between evaluations), n_probe (test points for the alignment).
    """

    _unknown_field = "unknown field for model 'cnn'"

    _: KW_ONLY
    model: str = "cnn"
    data: str = "digits"
    classes: tuple[int, int] = (0, 1)
    n_train: int = 0
    n_test: int = 0
    root: str = ""
    data_seed: int = 0
    depth: int = 2
    gamma0: float = 1.0
    eta: float = 0.05
    lr_scaling: str = "mean_field"
    decay_start: float = 1.0
    batch_size: int = 32
    epochs: int = 2
    eval_every: int = 10
    n_probe: int = 64

    def __post_init__(self) -> None:
        if self.model != "cnn":
            raise ValueError(f"model: CNNSpec needs model 'cnn', got {self.model!r}")
        if self.data not in CNN_DATASETS:
            raise ValueError(f"data: unknown value {self.data!r} for model 'cnn'; valid values are {list(CNN_DATASETS)}")
        if self.data == "cifar10" and not (isinstance(self.root, str) and self.root):
            raise ValueError("root: data 'cifar10' needs root, the folder holding cifar-10-batches-py")
        c = self.classes
        if (not isinstance(c, (list, tuple)) or len(c) != 2 or len(set(c)) != 2
                or not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= 9 for k in c)):
            raise ValueError(f"classes: must be two different class indices in 0..9, got {c!r}")
        object.__setattr__(self, "classes", tuple(c))
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: must be an integer >= 0, got {v!r}")
        self.config(1, 1)  # the trainer's own checks name the field (depth, gamma0, eta, ...)
        for name in ("gamma0", "eta", "decay_start"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def dataset(self):
        """The two-class image ``simulate.data.Dataset`` (images (n, C, H, W), with a test set)."""
        from simulate.data import cifar10, digits

        sizes = dict(n_train=self.n_train or None, n_test=self.n_test or None, seed=self.data_seed)
        if self.data == "digits":
            return digits(self.classes, **sizes)
        return cifar10(self.root, self.classes, **sizes)

    def config(self, channels: int, seeds: int, *, seed: int = 0, device: str = "cpu"):
        """The ``simulate.cnn.CNNConfig`` for ``channels`` N and ``seeds`` networks."""
        from simulate.cnn import CNNConfig

        return CNNConfig(channels=int(channels), depth=self.depth, gamma0=self.gamma0, eta=self.eta,
                         lr_scaling=self.lr_scaling, decay_start=self.decay_start,
                         batch_size=self.batch_size, epochs=self.epochs,
                         eval_every=self.eval_every, n_probe=self.n_probe, seeds=seeds, seed=seed,
                         data_seed=self.data_seed, device=device)

    def fingerprint(self) -> str:
        return repr(sorted(dataclasses.asdict(self).items()))

    def label(self) -> str:
        return (f"cnn {self.data}{list(self.classes)} L={self.depth} gamma0={self.gamma0:g} "
                f"eta={self.eta:g} epochs={self.epochs} B={self.batch_size}")
