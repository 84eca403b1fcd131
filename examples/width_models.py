"""Example models for ``validate.width_study`` and the ``*.claims.toml`` files beside this file.

Each model is a callable ``width -> torch.nn.Module`` with an optimizer rule ``(model, width) ->
torch.optim.Optimizer``. Scaled layers hold N(0, 1) weights and multiply by a fixed factor in
the forward pass, so the parameterisation is explicit:

- :class:`MuPMLP`: the project's own mean-field (muP) MLP (docs: docs/theory.md section 1):
  ``h^1 = W0 x / sqrt(D)``, ``h^{l+1} = W^l phi(h^l) / sqrt(N)``, ``f = w . phi(h^L) / (gamma0 N)``,
  trained by SGD at learning rate ``eta gamma0^2 N`` (:func:`mup_sgd`). Width-independent.
- :func:`sp_mlp`: the same layers as ``torch.nn.Linear`` in PyTorch's default
  parameterisation, at one learning rate for every width (:func:`fixed_sgd`). Its NTK grows
  like N, so wider networks train faster: the loss depends on width.
- :class:`NTKReadoutMLP`: ``MuPMLP`` with the readout scaled ``1 / sqrt(N)`` and an O(1)
  learning rate (:func:`fixed_sgd`): the NTK parameterisation. The loss has a width-independent
  limit, but the hidden features move by O(N^-1/2): ``delta_rms`` of the hidden layers decays.
- :class:`MeanFieldCNN`: the project's mean-field CNN (``simulate.cnn``): 3x3 convolutions
  scaled ``1 / sqrt(9 C_in)``, global average pooling, readout ``1 / (gamma0 N)``; :func:`mup_sgd`.
- :class:`MuPTransformerBlock`: one attention layer and an MLP with residual connections, muP:
  attention logits ``q . k / d_head``, readout ``1 / (gamma0 N)``; :func:`mup_sgd`.

Data (full batch, fixed seeds): :data:`MLP_DATA`, :data:`IMAGE_DATA`, :data:`TOKEN_DATA`.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

INPUT_DIM = 16
GAMMA0 = 1.0
ETA = 0.1          # muP: SGD learning rate eta * gamma0^2 * N (a model's own ``eta`` wins)
FIXED_LR = 0.05    # one learning rate for every width (standard and NTK parameterisations)
DTYPE = torch.float64


def _gaussian(n: int, shape: tuple, seed: int) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


def _teacher(x: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed nonlinear target of the flattened inputs, of unit size."""
    flat = x.reshape(x.shape[0], -1)
    beta = torch.randn(flat.shape[1], generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    return torch.tanh(2 * flat @ beta / math.sqrt(flat.shape[1]))


MLP_X = _gaussian(32, (INPUT_DIM,), 1)
MLP_DATA = (MLP_X, _teacher(MLP_X, 2))
IMAGE_X = _gaussian(16, (1, 6, 6), 3)
IMAGE_DATA = (IMAGE_X, _teacher(IMAGE_X, 4))
TOKEN_X = _gaussian(16, (4, 8), 5)
TOKEN_DATA = (TOKEN_X, _teacher(TOKEN_X.mean(1) * 2, 6))  # a function of the token mean (4 tokens)


class Scaled(nn.Module):
    """``scale * x W^T`` with W (fan_out, fan_in) drawn N(0, 1)."""

    def __init__(self, fan_in: int, fan_out: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in, dtype=DTYPE))
        self.scale = scale

    def forward(self, x):
        return nn.functional.linear(x, self.weight) * self.scale


class ScaledConv(nn.Module):
    """3x3 convolution (padding 1) with N(0, 1) weights, scaled ``1 / sqrt(9 C_in)``."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3, dtype=DTYPE))
        self.scale = 1 / math.sqrt(9 * c_in)

    def forward(self, x):
        return nn.functional.conv2d(x, self.weight, padding=1) * self.scale


class MuPMLP(nn.Sequential):
    """The project's mean-field MLP with ``depth`` hidden layers of width N, tanh, scalar output."""

    eta = ETA

    def __init__(self, width: int, depth: int = 3, input_dim: int = INPUT_DIM, gamma0: float = GAMMA0,
                 readout_scale: float | None = None):
        layers = [("input", Scaled(input_dim, width, 1 / math.sqrt(input_dim))), ("act1", nn.Tanh())]
        for l in range(1, depth):
            layers += [(f"hidden{l}", Scaled(width, width, 1 / math.sqrt(width))), (f"act{l + 1}", nn.Tanh())]
        scale = 1 / (gamma0 * width) if readout_scale is None else readout_scale
        layers.append(("readout", Scaled(width, 1, scale)))
        super().__init__(OrderedDict(layers))


class NTKReadoutMLP(MuPMLP):
    """``MuPMLP`` with the readout scaled ``1 / sqrt(N)`` (the NTK parameterisation)."""

    def __init__(self, width: int, depth: int = 3, input_dim: int = INPUT_DIM):
        super().__init__(width, depth, input_dim, readout_scale=1 / math.sqrt(width))


def sp_mlp(width: int, depth: int = 3, input_dim: int = INPUT_DIM) -> nn.Sequential:
    """The same MLP from ``torch.nn.Linear`` layers with PyTorch's default initialisation."""
    layers = [("input", nn.Linear(input_dim, width)), ("act1", nn.Tanh())]
    for l in range(1, depth):
        layers += [(f"hidden{l}", nn.Linear(width, width)), (f"act{l + 1}", nn.Tanh())]
    layers.append(("readout", nn.Linear(width, 1)))
    return nn.Sequential(OrderedDict(layers)).to(DTYPE)


class MeanFieldCNN(nn.Module):
    """``depth`` 3x3 conv layers of N channels, ReLU, global average pooling, readout 1/(gamma0 N)
    (initialised to zero, as muP recommends)."""

    eta = 1.0

    def __init__(self, width: int, depth: int = 2, in_channels: int = 1, gamma0: float = GAMMA0):
        super().__init__()
        convs = [ScaledConv(in_channels, width)] + [ScaledConv(width, width) for _ in range(depth - 1)]
        self.convs = nn.ModuleList(convs)
        self.acts = nn.ModuleList(nn.ReLU() for _ in convs)
        self.readout = Scaled(width, 1, 1 / (gamma0 * width))
        nn.init.zeros_(self.readout.weight)

    def forward(self, x):
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return self.readout(x.mean((2, 3)))


class Attention(nn.Module):
    """Multi-head self-attention with muP logits ``q . k / d_head`` (heads fixed, d_head = N / heads)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        s = 1 / math.sqrt(width)
        self.q, self.k, self.v, self.o = (Scaled(width, width, s) for _ in range(4))
        self.heads = heads

    def forward(self, h):
        B, T, N = h.shape
        split = lambda t: t.reshape(B, T, self.heads, N // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        att = torch.softmax(q @ k.transpose(-1, -2) / (N // self.heads), dim=-1)
        return self.o((att @ v).transpose(1, 2).reshape(B, T, N))


class MuPTransformerBlock(nn.Module):
    """Embedding, one attention layer and an MLP (both residual), mean over tokens, readout 1/(gamma0 N)
    (initialised to zero, as muP recommends)."""

    eta = ETA

    def __init__(self, width: int, heads: int = 2, input_dim: int = 8, gamma0: float = GAMMA0):
        super().__init__()
        s = 1 / math.sqrt(width)
        self.embed = Scaled(input_dim, width, 1 / math.sqrt(input_dim))
        self.attn = Attention(width, heads)
        self.mlp_in, self.mlp_act, self.mlp_out = Scaled(width, width, s), nn.Tanh(), Scaled(width, width, s)
        self.readout = Scaled(width, 1, 1 / (gamma0 * width))
        nn.init.zeros_(self.readout.weight)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.attn(h)
        h = h + self.mlp_out(self.mlp_act(self.mlp_in(h)))
        return self.readout(h.mean(1))


def mup_sgd(model: nn.Module, width: int) -> torch.optim.Optimizer:
    """SGD at the mean-field learning rate ``eta gamma0^2 N`` (``eta`` of the model's class)."""
    return torch.optim.SGD(model.parameters(), lr=getattr(model, "eta", ETA) * GAMMA0**2 * width)


def fixed_sgd(model: nn.Module, width: int) -> torch.optim.Optimizer:
    """SGD at one learning rate for every width."""
    return torch.optim.SGD(model.parameters(), lr=FIXED_LR)
