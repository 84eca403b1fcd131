"""Data sets for the experiments (docs/theory.md section 7), all returned as one small frozen type.

- :func:`gaussian`: the synthetic Gaussian inputs of ``theory.data.gaussian_data``.
- :func:`cifar10`: two CIFAR-10 classes, labels +-1, read through torchvision's dataset format
  (``<root>/cifar-10-batches-py``: data_batch_1..5, test_batch, batches.meta) from a local folder.
- :func:`digits`: two classes of scikit-learn's bundled 8x8 digits (offline), labels +-1.

Image sets keep their image shape ``(n, C, H, W)`` (the CNN needs it); :meth:`Dataset.flat` and
:meth:`Dataset.problem` give the ``(n, D)`` view an MLP and ``theory.Problem`` take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from theory.data import gaussian_data

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


@dataclass(frozen=True, kw_only=True, eq=False)
class Dataset:
    """Inputs and +-1 (or real) targets, float64 CPU tensors.

    x_train: (P, ...) inputs (``(P, D)`` vectors or ``(P, C, H, W)`` images); y_train: (P,).
    x_test, y_test: the same for the Q test points, or None.
    name: short identifier; info: provenance (classes, sizes, standardisation statistics, ...).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    name: str = "dataset"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for xs, ys in (("x_train", "y_train"), ("x_test", "y_test")):
            x, y = getattr(self, xs), getattr(self, ys)
            if (x is None) != (y is None):
                raise ValueError(f"{ys}: must be given exactly when {xs} is")
            if x is None:
                continue
            x = torch.as_tensor(x, dtype=torch.float64)
            y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
            if x.ndim < 2 or x.shape[0] != y.shape[0] or x.shape[0] < 1:
                raise ValueError(f"{xs}: expected (n, ...) with n = len({ys}) >= 1, got {tuple(x.shape)} and {tuple(y.shape)}")
            if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
                raise ValueError(f"{xs}/{ys}: contain NaN or infinite values")
            object.__setattr__(self, xs, x)
            object.__setattr__(self, ys, y)
        if self.x_test is not None and self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(f"x_test: point shape {tuple(self.x_test.shape[1:])} differs from x_train's")

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        return 0 if self.x_test is None else self.x_test.shape[0]

    def flat(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(x_train (P, D), x_test (Q, D) or None)`` with every point flattened."""
        f = lambda x: None if x is None else x.reshape(x.shape[0], -1)  # noqa: E731
        return f(self.x_train), f(self.x_test)

    def problem(self, **kw):
        """A ``theory.Problem`` on the flattened inputs; ``kw`` are its keywords (depth, gamma0, ...)."""
        from theory.problem import Problem

        xtr, xte = self.flat()
        return Problem(xtr, self.y_train, xte, self.y_test, **kw)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, P={self.n_train}, Q={self.n_test}, shape={tuple(self.x_train.shape[1:])})"


def gaussian(n_train: int, input_dim: int, n_test: int = 0, *, seed: int = 0, target: str = "linear") -> Dataset:
    """``x ~ N(0, I_D)`` with a linear (or sign) teacher; see ``theory.data.gaussian_data``."""
    x, y, xt, yt = gaussian_data(n_train, input_dim, n_test, seed=seed, target=target)
    return Dataset(x_train=x, y_train=y, x_test=xt, y_test=yt, name=f"gaussian-D{input_dim}",
                   info={"seed": seed, "target": target})


# ----------------------------------------------------------------------------- helpers
def _two_classes(classes: Sequence, names: Sequence[str]) -> tuple[int, int]:
    if len(classes) != 2:
        raise ValueError(f"classes: expected two classes, got {classes!r}")
    out = []
    for c in classes:
        if isinstance(c, str):
            if c not in names:
                raise ValueError(f"classes: unknown class {c!r}; valid names are {list(names)}")
            c = list(names).index(c)
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < len(names):
            raise ValueError(f"classes: {c!r} is not a class index in 0..{len(names) - 1} or a name")
        out.append(int(c))
    if out[0] == out[1]:
        raise ValueError(f"classes: the two classes must differ, got {classes!r}")
    return out[0], out[1]


def _select(x: np.ndarray, labels: np.ndarray, pair: tuple[int, int], n, rng, field_name: str):
    """Points of the two classes (first -> +1, second -> -1), optionally a random subset of n."""
    idx = np.flatnonzero((labels == pair[0]) | (labels == pair[1]))
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{field_name}: must be a positive integer or None, got {n!r}")
        if n > idx.size:
            raise ValueError(f"{field_name}: asked for {n} points but the two classes have {idx.size}")
        idx = np.sort(rng.choice(idx, size=n, replace=False))
    y = np.where(labels[idx] == pair[0], 1.0, -1.0)
    return torch.as_tensor(x[idx], dtype=torch.float64), torch.as_tensor(y)


def _standardize(xtr: torch.Tensor, xte: torch.Tensor | None):
    """Per-channel z-scoring with training statistics; images are (n, C, H, W)."""
    dims = (0, 2, 3) if xtr.ndim == 4 else (0,)
    mean = xtr.mean(dims, keepdim=True)
    std = xtr.std(dims, keepdim=True).clamp(min=1e-12)
    z = lambda x: None if x is None else (x - mean) / std  # noqa: E731
    return z(xtr), z(xte), {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}


def _finish(name, xtr, ytr, xte, yte, standardize, info) -> Dataset:
    if standardize:
        xtr, xte, stats = _standardize(xtr, xte)
        info["standardization"] = stats
    return Dataset(x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, name=name, info=info)


# ----------------------------------------------------------------------------- CIFAR-10
def cifar10(
    root,
    classes: Sequence = (0, 1),
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    standardize: bool = True,
    download: bool = False,
    verify: bool = True,
) -> Dataset:
    """Two CIFAR-10 classes from ``<root>/cifar-10-batches-py`` via ``torchvision.datasets.CIFAR10``.

    classes: two indices (0..9) or names (``CIFAR10_CLASSES``); the first gets label +1.
    n_train / n_test: random subsets (seeded by ``seed``) of the two classes' points; None keeps all.
    standardize: per-channel z-scoring with training-set statistics (pixels are first scaled to [0, 1]).
    download: let torchvision fetch the archive (needs a network); off by default.
    verify: torchvision's md5 check of every file. A folder in the same layout that is not the
        official archive (a generated test folder, a re-packed copy) fails it; ``verify=False``
        reads it through a subclass that only checks the files exist.
    Returns images (n, 3, 32, 32).
    """
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as exc:  # pragma: no cover - torchvision is in the 'vision' extra
        raise ImportError("cifar10 needs torchvision (pip install 'dmft-validate[vision]')") from exc
    pair = _two_classes(classes, CIFAR10_CLASSES)
    cls = CIFAR10 if verify else _unverified_cifar10()
    try:
        sets = [cls(str(root), train=tr, download=download) for tr in (True, False)]
    except RuntimeError as exc:
        raise RuntimeError(
            f"cifar10: cannot read {root!s}/cifar-10-batches-py ({exc}). Pass download=True to fetch "
            "the official archive, or verify=False for a folder in the same layout that is not it"
        ) from None
    rng = np.random.default_rng(seed)
    out = []
    for ds, n, fname in ((sets[0], n_train, "n_train"), (sets[1], n_test, "n_test")):
        images = np.asarray(ds.data).transpose(0, 3, 1, 2).astype(np.float64) / 255.0  # HWC -> CHW
        out.append(_select(images, np.asarray(ds.targets), pair, n, rng, fname))
    (xtr, ytr), (xte, yte) = out
    info = {"root": str(root), "classes": [CIFAR10_CLASSES[c] for c in pair], "seed": seed, "verified": verify}
    return _finish(f"cifar10-{pair[0]}v{pair[1]}", xtr, ytr, xte, yte, standardize, info)


def _unverified_cifar10():
    from torchvision.datasets import CIFAR10

    class UnverifiedCIFAR10(CIFAR10):
        """Same layout as CIFAR10; torchvision's check_integrity only tests existence for md5=None."""

        train_list = [[name, None] for name, _ in CIFAR10.train_list]
        test_list = [[name, None] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

        def download(self) -> None:  # an unverified folder is never fetched
            if not self._check_integrity():
                raise RuntimeError("download=True needs verify=True (the official archive)")

    return UnverifiedCIFAR10


# ----------------------------------------------------------------------------- digits
def digits(
    classes: Sequence[int] = (0, 1),
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    standardize: bool = True,
) -> Dataset:
    """Two classes of scikit-learn's bundled 8x8 digits (no network), first class +1.

    The two classes' points are split at random (seeded) into train and test
    (``test_fraction``), then optionally subsampled. Returns images (n, 1, 8, 8).
    """
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: must lie in (0, 1), got {test_fraction!r}")
    pair = _two_classes(classes, [str(i) for i in range(10)])
    bunch = load_digits()
    images = bunch.images.astype(np.float64)[:, None] / 16.0
    labels = bunch.target
    rng = np.random.default_rng(seed)
    idx = rng.permutation(np.flatnonzero((labels == pair[0]) | (labels == pair[1])))
    cut = int(round(idx.size * (1 - test_fraction)))
    parts = [np.sort(idx[:cut]), np.sort(idx[cut:])]
    (xtr, ytr), (xte, yte) = (
        _select(images[p], labels[p], pair, n, rng, fname)
        for p, n, fname in ((parts[0], n_train, "n_train"), (parts[1], n_test, "n_test"))
    )
    info = {"classes": list(pair), "seed": seed, "test_fraction": test_fraction}
    return _finish(f"digits-{pair[0]}v{pair[1]}", xtr, ytr, xte, yte, standardize, info)
