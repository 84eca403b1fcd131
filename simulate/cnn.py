"""The Fig. 4 convolutional network in the mean-field parameterisation (docs/theory.md sections 1, 7).

    h^1     = conv3x3(x, W^0) / sqrt(9 C_in)                    (padding 1, stride 1)
    h^{l+1} = conv3x3(relu(h^l), W^l) / sqrt(9 N)               l = 1 .. depth-1
    f       = w . mean_pixels(relu(h^depth)) / (gamma0 N)        (global average pooling)

All weights i.i.d. N(0, 1); ``1/sqrt(fan_in)`` on every layer including the first (the official
notebook omits it there: docs/theory.md section 8, known pitfalls). Training uses the centred output
``f~ = f - f(theta_0)`` and minibatch SGD on ``(1/2B) sum_batch (f~ - y)^2`` over the FULL given
training set (every epoch visits every point once, last partial batch included), with learning
rate ``eta * gamma0^2 * N`` (``lr_scaling="mean_field"``) or ``eta`` (``"fixed"``).

Seeds are batched, not looped: the S networks are stacked along the channel axis, the first
layer is one convolution with ``S N`` output channels and later layers are grouped convolutions
(``groups=S``), so one autograd pass trains all of them. All seeds see the same minibatch order
(``data_seed``); network ``i`` is initialised from ``seed + i``.
"""

from __future__ import annotations

import math
import time
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .data import Dataset
from .mlp import DIVERGENCE_FACTOR

LR_SCALINGS = ("mean_field", "fixed")


@dataclass(frozen=True, kw_only=True)
class CNNConfig:
    """channels N, depth (conv layers), gamma0 (> 0), eta, lr_scaling, decay_start (fraction of
    training after which the rate decays linearly to 0; 1.0 keeps it constant), batch_size, epochs,
    eval_every (SGD steps between evaluations), n_probe (test points for the alignment),
    seeds, seed, data_seed (minibatch order), device, dtype."""

    channels: int = 64
    depth: int = 3
    gamma0: float = 1.0
    eta: float = 0.05
    lr_scaling: str = "mean_field"
    decay_start: float = 1.0
    batch_size: int = 64
    epochs: int = 1
    eval_every: int = 10
    n_probe: int = 64
    seeds: int = 1
    seed: int = 0
    data_seed: int = 0
    device: str = "cpu"
    dtype: torch.dtype = torch.float64

    def __post_init__(self) -> None:
        for name, lo in (("channels", 1), ("depth", 1), ("batch_size", 1), ("epochs", 1),
                         ("eval_every", 1), ("n_probe", 2), ("seeds", 1), ("seed", 0), ("data_seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: must be an integer >= {lo}, got {v!r}")
        for name in ("gamma0", "eta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name}: must be a finite number > 0, got {v!r}")
        if isinstance(self.decay_start, bool) or not isinstance(self.decay_start, (int, float)) \
                or not 0.0 <= self.decay_start <= 1.0:
            raise ValueError(f"decay_start: must be a fraction in [0, 1], got {self.decay_start!r}")
        if self.lr_scaling not in LR_SCALINGS:
            raise ValueError(f"lr_scaling: unknown value {self.lr_scaling!r}; valid values are {list(LR_SCALINGS)}")
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise ValueError(f"dtype: must be a torch floating dtype, got {self.dtype!r}")

    @property
    def lr(self) -> float:
        return self.eta * self.gamma0**2 * self.channels if self.lr_scaling == "mean_field" else self.eta

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate of SGD step ``step`` (0-based) of ``total``: ``lr`` until the fraction
        ``decay_start`` of training, then decaying linearly to 0 at the end (1.0: constant)."""
        start = self.decay_start * total
        if step < start or total <= start:
            return self.lr
        return self.lr * max(0.0, (total - step) / (total - start))


@dataclass(frozen=True, eq=False)
class CNNRun:
    """Evaluations of S CNNs during SGD (CPU tensors). E = number of evaluations.

    step: (E,) SGD steps at which evaluations happened (0 first, the last step last).
    epoch: (E,) the same in epochs (step / steps_per_epoch).
    train_loss: (S, E) mean minibatch MSE since the previous evaluation (NaN at step 0).
    test_mse: (S, E) mean over test points of (f~ - y)^2.
    test_error: (S, E) fraction of test points with sign(f~) != y (a tie f~ = 0 counts 1/2, so the
        untrained centred network scores 0.5).
    alignment: (S, E) A(Phi, y y^T) = <Phi, y y^T> / (|Phi| |y y^T|) of the last-layer pooled feature
        kernel Phi = phibar phibar^T / N over the probe set (the first n_probe test points).
    diverged: (S,) bool; diverged_step: (S,) first SGD step with a non-finite or exploding loss, -1
        if none. Evaluations at or after it are NaN.
    """

    config: CNNConfig
    step: torch.Tensor
    epoch: torch.Tensor
    train_loss: torch.Tensor
    test_mse: torch.Tensor
    test_error: torch.Tensor
    alignment: torch.Tensor
    diverged: torch.Tensor
    diverged_step: torch.Tensor
    _: KW_ONLY
    info: dict[str, Any] = field(default_factory=dict)


def init_cnn(in_channels: int, config: CNNConfig) -> list[torch.Tensor]:
    """Stacked weights: [W^0 (S N, C_in, 3, 3), W^l (S N, N, 3, 3) ..., w (S, N)], N(0, 1).

    Network i draws, from a generator seeded ``seed + i`` on ``device``: W^0, W^1, ..., w.
    """
    S, N, dev = config.seeds, config.channels, torch.device(config.device)
    shapes = [(N, in_channels, 3, 3)] + [(N, N, 3, 3)] * (config.depth - 1) + [(N,)]
    params = [torch.empty((S,) + s, device=dev, dtype=config.dtype) for s in shapes]
    for i in range(S):
        gen = torch.Generator(device=dev).manual_seed(config.seed + i)
        for p in params:
            p[i].normal_(generator=gen)
    flat = [p.reshape(S * p.shape[1], *p.shape[2:]) for p in params[:-1]] + [params[-1]]
    return [p.requires_grad_(True) for p in flat]


def cnn_features(params: list[torch.Tensor], x: torch.Tensor, seeds: int) -> torch.Tensor:
    """Pooled last-layer features ``mean_pixels(relu(h^depth))``: (B, S, N) for x (B, C, H, W)."""
    N = params[-1].shape[1]
    h = F.conv2d(x, params[0], padding=1) / math.sqrt(9 * x.shape[1])
    for W in params[1:-1]:
        h = F.conv2d(torch.relu(h), W, padding=1, groups=seeds) / math.sqrt(9 * N)
    a = torch.relu(h)
    return a.mean((2, 3)).reshape(x.shape[0], seeds, N)


def cnn_output(params, x, seeds: int, gamma0: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f (B, S), pooled features (B, S, N))``, f = w . phibar / (gamma0 N) (uncentred)."""
    feats = cnn_features(params, x, seeds)
    N = feats.shape[-1]
    return torch.einsum("bsn,sn->bs", feats, params[-1]) / (gamma0 * N), feats


def _alignment(feats: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(S,) A(Phi, y y^T) for feats (B, S, N) and y (B,)."""
    k = torch.einsum("asn,bsn->sab", feats, feats) / feats.shape[-1]
    yy = torch.outer(y, y)
    return (k * yy).sum((1, 2)) / (k.flatten(1).norm(dim=1) * yy.norm())


@torch.no_grad()
def _evaluate(params, x, chunk: int, seeds: int, gamma0: float) -> tuple[torch.Tensor, torch.Tensor]:
    outs = [cnn_output(params, x[i:i + chunk], seeds, gamma0) for i in range(0, x.shape[0], chunk)]
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])


def minibatches(n: int, batch_size: int, epochs: int, data_seed: int):
    """Yield ``(epoch, indices)``: each epoch a fresh permutation of ``range(n)`` (seeded by
    ``data_seed``) cut into batches of ``batch_size``, the last one possibly smaller, so every
    point is visited exactly once per epoch."""
    gen = torch.Generator().manual_seed(data_seed)
    for e in range(epochs):
        order = torch.randperm(n, generator=gen)
        for b0 in range(0, n, batch_size):
            yield e, order[b0:b0 + batch_size]


class CNNTraining:
    """The state of one :func:`train_cnn` call: weights, initial outputs, divergence flags, the
    running training loss since the last evaluation and the evaluations so far.

    :meth:`sgd_step` takes one minibatch step on every seed that has not diverged; :meth:`evaluate`
    appends one evaluation on the test set; :meth:`result` packs a :class:`CNNRun`.
    """

    def __init__(self, data: Dataset, config: CNNConfig):
        S, dev, dt = config.seeds, torch.device(config.device), config.dtype
        self.config, self.dev = config, dev
        self.xtr, self.ytr = data.x_train.to(dev, dt), data.y_train.to(dev, dt)
        self.xte, self.yte = data.x_test.to(dev, dt), data.y_test.to(dev, dt)
        self.n_probe = min(config.n_probe, self.xte.shape[0])
        self.batch = min(config.batch_size, self.xtr.shape[0])
        self.per_epoch = math.ceil(self.xtr.shape[0] / self.batch)
        self.total = self.per_epoch * config.epochs
        self.params = init_cnn(self.xtr.shape[1], config)
        self.chunk = max(self.batch, 256)  # evaluation batch
        self.f0_train = _evaluate(self.params, self.xtr, self.chunk, S, config.gamma0)[0]
        self.f0_test = _evaluate(self.params, self.xte, self.chunk, S, config.gamma0)[0]
        self.rec = {k: [] for k in ("step", "train_loss", "test_mse", "test_error", "alignment")}
        self.dead = torch.zeros(S, dtype=torch.bool, device=dev)
        self.first = torch.full((S,), -1, dtype=torch.int64, device=dev)
        self.running, self.n_run = torch.zeros(S, device=dev, dtype=dt), 0
        self.step = 0
        self.limit = DIVERGENCE_FACTOR * torch.clamp((self.ytr**2).mean(), min=1.0)

    def sgd_step(self, idx: torch.Tensor) -> None:
        """One SGD step on the minibatch ``idx`` of the training set (diverged seeds are frozen)."""
        cfg, S = self.config, self.config.seeds
        idx = idx.to(self.dev)
        f, _ = cnn_output(self.params, self.xtr[idx], S, cfg.gamma0)
        per_seed = ((f - self.f0_train[idx] - self.ytr[idx, None]) ** 2).mean(0)  # (S,) batch MSE
        with torch.no_grad():
            new = (~torch.isfinite(per_seed) | (per_seed > self.limit)) & ~self.dead
            self.first = torch.where(new, torch.full_like(self.first, self.step), self.first)
            self.dead |= new
        loss = 0.5 * torch.where(self.dead, torch.zeros_like(per_seed), per_seed).sum()
        grads = torch.autograd.grad(loss, self.params)
        with torch.no_grad():
            for p, g in zip(self.params, grads):
                p.sub_(torch.nan_to_num(g), alpha=cfg.lr_at(self.step, self.total))
            self.running += per_seed.detach()
            self.n_run += 1
        self.step += 1

    def evaluate(self) -> None:
        """Append an evaluation at the current step (see :class:`CNNRun` for the quantities)."""
        cfg, rec, yte, dt = self.config, self.rec, self.yte, self.config.dtype
        f, feats = _evaluate(self.params, self.xte, self.chunk, cfg.seeds, cfg.gamma0)
        ft = f - self.f0_test
        rec["step"].append(self.step)
        rec["train_loss"].append(self.running / self.n_run if self.n_run
                                 else torch.full_like(self.running, float("nan")))
        rec["test_mse"].append(((ft - yte[:, None]) ** 2).mean(0))
        margin = ft * yte[:, None]
        rec["test_error"].append(((margin < 0).to(dt) + 0.5 * (margin == 0).to(dt)).mean(0))
        rec["alignment"].append(_alignment(feats[: self.n_probe], yte[: self.n_probe]))
        self.running, self.n_run = torch.zeros_like(self.running), 0

    def result(self, wall: float) -> CNNRun:
        """The evaluations as a :class:`CNNRun`; those at or after a seed's divergence are NaN."""
        steps = torch.as_tensor(self.rec["step"])
        out = {k: torch.stack(v, 1).cpu() for k, v in self.rec.items() if k != "step"}
        first = self.first.cpu()
        for i in torch.nonzero(first >= 0)[:, 0].tolist():
            late = steps >= first[i]
            for v in out.values():
                v[i, late] = float("nan")
        return CNNRun(
            self.config, steps, steps.to(torch.float64) / self.per_epoch,
            out["train_loss"], out["test_mse"], out["test_error"], out["alignment"], first >= 0, first,
            info={"wall_s": wall, "steps_per_epoch": self.per_epoch, "n_probe": self.n_probe,
                  "n_train": self.xtr.shape[0], "n_test": self.xte.shape[0]},
        )


def train_cnn(data: Dataset, config: CNNConfig, *, progress: bool = False) -> CNNRun:
    """Train ``config.seeds`` CNNs on ``data`` (images (P, C, H, W), test set required) by SGD,
    evaluating at step 0, every ``eval_every`` steps and at the last step."""
    if not isinstance(data, Dataset) or data.x_train.ndim != 4 or data.x_test is None:
        raise ValueError("data: expected a simulate.data.Dataset of images (n, C, H, W) with a test set")
    if torch.device(config.device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but is not available; use 'cpu'")
    run = CNNTraining(data, config)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=run.total, desc=f"cnn N={config.channels}", unit="step")
    start = time.perf_counter()
    run.evaluate()
    for _, idx in minibatches(run.xtr.shape[0], run.batch, config.epochs, config.data_seed):
        if bool(run.dead.all()):
            break
        run.sgd_step(idx)
        if bar is not None:
            bar.update(1)
        if run.step % config.eval_every == 0 or run.step == run.total:
            run.evaluate()
    if bar is not None:
        bar.close()
    return run.result(time.perf_counter() - start)
