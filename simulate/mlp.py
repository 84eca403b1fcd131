"""Finite-width fully connected networks in the mean-field parameterisation (docs/theory.md section 1).

Seeds are trained together: every weight carries a leading ensemble axis ``S`` and every layer is
one batched matmul (``torch.bmm``). The backward pass is written out, because its fields
``g^l = phi'(h^l) * z^l`` are needed for the kernels ``G^l`` anyway:

    h^1 = X W0^T / sqrt(D),   h^{l+1} = phi(h^l) W^l^T / sqrt(N),   f = phi(h^L) . w / (gamma0 N)
    z^L = w,   z^l = g^{l+1} W^l / sqrt(N),   g^l = phi'(h^l) * z^l

(row layout: a field is an ``(S, P_all, N)`` tensor). With ``Delta = y - f~`` on the ``P``
training points and learning rate ``eta gamma0^2 N``, one gradient-descent step on
``(1/2P) sum (f~ - y)^2`` is

    w   += (eta gamma0 / P)          sum_mu Delta_mu phi(h^L_mu)
    W^l += (eta gamma0 / (P sqrt N)) sum_mu Delta_mu g^{l+1}_mu phi(h^l_mu)^T
    W0  += (eta gamma0 / (P sqrt D)) sum_mu Delta_mu g^1_mu x_mu^T

and the NTK (learning rate included) is ``K = gamma0^2 N grad f . grad f
= G^1 * Kx + sum_{l=1}^{L-1} G^{l+1} * Phi^l + Phi^L``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: A seed is flagged as diverged when its loss is non-finite or exceeds this factor times
#: ``max(1, loss(0))``.
DIVERGENCE_FACTOR = 1e6


@dataclass
class Network:
    """Weights of ``S`` networks: ``w0`` (S, N, D), ``hidden[j] = W^{j+1}`` (S, N, N), ``w`` (S, N)."""

    w0: torch.Tensor
    hidden: list[torch.Tensor]
    w: torch.Tensor

    @property
    def width(self) -> int:
        return self.w.shape[1]


@dataclass
class Fields:
    """Forward and backward fields over all points, each (S, P_all, N), index j = layer j + 1."""

    h: list[torch.Tensor]
    a: list[torch.Tensor]
    g: list[torch.Tensor] | None
    f: torch.Tensor  # (S, P_all) raw (uncentred) output


def init_network(
    input_dim: int, width: int, depth: int, seeds: list[int], *, device, dtype
) -> Network:
    """i.i.d. N(0, 1) weights; network ``i`` is drawn from its own generator seeded ``seeds[i]``.

    Per seed the draws are, in order: W0 (N, D), W^1 .. W^{L-1} (N, N), w (N), so the weights of
    a seed do not depend on which other seeds share the batch. Draws happen on ``device`` (CPU and
    CUDA generators give different streams).
    """
    S = len(seeds)
    kw = dict(device=device, dtype=dtype)
    w0 = torch.empty(S, width, input_dim, **kw)
    hidden = [torch.empty(S, width, width, **kw) for _ in range(depth - 1)]
    w = torch.empty(S, width, **kw)
    for i, s in enumerate(seeds):
        gen = torch.Generator(device=device).manual_seed(int(s))
        for t in (w0, *hidden, w):
            t[i].normal_(generator=gen)
    return Network(w0, hidden, w)


def forward(net: Network, x: torch.Tensor, act, gamma0: float, *, backward: bool = True) -> Fields:
    """Fields of every layer for inputs ``x`` (P_all, D); ``backward`` also computes ``g^l``."""
    N, D = net.width, x.shape[1]
    h = [torch.matmul(x, net.w0.mT) / math.sqrt(D)]
    a = [act.phi(h[0])]
    for W in net.hidden:
        h.append(torch.bmm(a[-1], W.mT) / math.sqrt(N))
        a.append(act.phi(h[-1]))
    f = torch.bmm(a[-1], net.w[:, :, None])[..., 0] / (gamma0 * N)
    g = None
    if backward:
        g = [None] * len(h)
        g[-1] = act.dphi(h[-1]) * net.w[:, None, :]
        for j in range(len(h) - 2, -1, -1):  # z^{j+1} = g^{j+2} W^{j+1} / sqrt(N)
            g[j] = act.dphi(h[j]) * (torch.bmm(g[j + 1], net.hidden[j]) / math.sqrt(N))
    return Fields(h, a, g, f)


def sgd_step(net: Network, fields: Fields, x_train: torch.Tensor, delta: torch.Tensor, c: float) -> None:
    """In place: one gradient step with ``delta`` (S, P) = ``y - f~`` and ``c = eta gamma0 / P``.

    ``x_train`` (P, D) are the training inputs; ``fields`` hold the fields at the current weights
    (their first P points are the training points).
    """
    P = delta.shape[1]
    N, D = net.width, x_train.shape[1]
    a = [t[:, :P] for t in fields.a]
    gd = [(t[:, :P] * delta[..., None]).mT for t in fields.g]  # (S, N, P)
    net.w.add_(torch.bmm(delta[:, None, :], a[-1])[:, 0], alpha=c)
    for j, W in enumerate(net.hidden):
        W.baddbmm_(gd[j + 1], a[j], alpha=c / math.sqrt(N))
    net.w0.add_(torch.matmul(gd[0], x_train), alpha=c / math.sqrt(D))


def layer_grams(fields: Fields, *, phi: bool = True, g: bool = True) -> tuple[list | None, list | None]:
    """Equal-time kernels of every layer from the fields: ``(Phi, G)``, each a list of L tensors
    (S, P_all, P_all), ``Phi^{j+1} = a^{j+1} a^{j+1 T} / N`` and ``G^{j+1} = g^{j+1} g^{j+1 T} / N``
    (None where not asked for)."""
    N = fields.a[0].shape[-1]
    gram = lambda u: torch.bmm(u, u.mT) / N  # noqa: E731
    return ([gram(a) for a in fields.a] if phi else None), ([gram(u) for u in fields.g] if g else None)


def ntk_from_grams(phi: list[torch.Tensor], g: list[torch.Tensor], kx: torch.Tensor) -> torch.Tensor:
    """(S, P_all, P_all) NTK ``G^1 * Kx + sum_l G^{l+1} * Phi^l + Phi^L`` from the layer kernels."""
    k = g[0] * kx
    for j in range(len(phi) - 1):
        k = k + g[j + 1] * phi[j]
    return k + phi[-1]


def equal_time_ntk(fields: Fields, kx: torch.Tensor) -> torch.Tensor:
    """(S, P_all, P_all) NTK ``G^1 * Kx + sum_l G^{l+1} * Phi^l + Phi^L`` from the fields."""
    return ntk_from_grams(*layer_grams(fields), kx)


def gram_into(out: torch.Tensor, feats: torch.Tensor, *, blocks: int = 8) -> None:
    """``out[s] = feats[s] feats[s]^T / N`` for feats (S, n, N), out (S, n, n) contiguous.

    ``feats`` is consumed: it is scaled by ``1/sqrt(N)`` in place. When ``N`` is small next to
    ``n`` the full product is written straight into ``out`` (one batched matmul, no copies);
    otherwise only the block lower triangle is multiplied (36/64 of the flops at 8 blocks) and
    mirrored.
    """
    n, N = feats.shape[1], feats.shape[2]
    feats.mul_(N**-0.5)
    if 2 * N <= n:
        torch.bmm(feats, feats.mT, out=out)
        return
    edges = [round(i * n / blocks) for i in range(blocks + 1)]
    for i in range(blocks):
        r0, r1 = edges[i], edges[i + 1]
        if r1 == r0:
            continue
        out[:, r0:r1, :r1] = torch.bmm(feats[:, r0:r1], feats[:, :r1].mT)
        if r0:
            out[:, :r0, r0:r1] = out[:, r0:r1, :r0].mT
