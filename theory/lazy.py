"""The lazy (gamma0 -> 0, static NTK) limit: Gaussian kernels and linear dynamics.

docs/theory.md section 3. For a pair of jointly Gaussian pre-activations with variances ``qa``,
``qb`` and covariance ``c`` we need ``E[phi(a) phi(b)]`` and ``E[phi'(a) phi'(b)]``. Closed
forms exist for ``linear``, ``relu`` (arc-cosine) and ``erf``; every other activation uses 2-D
Gauss-Legendre quadrature in whitened coordinates on ``[-R, R]^2`` (a range that scales with the
standard deviation), which converges far faster than Gauss-Hermite for large variances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .activations import Activation, get_activation

#: Default number of Gauss-Legendre nodes per dimension, and the half-width of the whitened range.
QUADRATURE_NODES = 96
QUADRATURE_RANGE = 9.0
#: Pairs evaluated at once by the quadrature (bounds memory at ``chunk * nodes**2`` numbers).
_QUAD_CHUNK_ELEMENTS = 1 << 22


def _closed_form(name: str, qa, qb, c):
    if name == "linear":
        return c, torch.ones_like(c)
    if name == "relu":
        norm = torch.sqrt(qa * qb)
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        cos = torch.clamp(c / safe, -1.0, 1.0)
        th = torch.arccos(cos)
        e_phi = norm * (torch.sin(th) + (math.pi - th) * cos) / (2.0 * math.pi)
        e_dphi = (math.pi - th) / (2.0 * math.pi)
        return e_phi, e_dphi
    if name == "erf":
        s = (1.0 + 2.0 * qa) * (1.0 + 2.0 * qb)
        e_phi = (2.0 / math.pi) * torch.arcsin(torch.clamp(2.0 * c / torch.sqrt(s), -1.0, 1.0))
        e_dphi = (4.0 / math.pi) / torch.sqrt(torch.clamp(s - 4.0 * c**2, min=1e-300))
        return e_phi, e_dphi
    return None


def has_closed_form(activation: Activation | str) -> bool:
    return get_activation(activation).name in ("linear", "relu", "erf")


def gaussian_moments(
    activation: Activation | str,
    qa: torch.Tensor,
    qb: torch.Tensor,
    c: torch.Tensor,
    *,
    nodes: int = QUADRATURE_NODES,
    quadrature: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E[phi(a) phi(b)], E[phi'(a) phi'(b)])`` for ``(a, b) ~ N(0, [[qa, c], [c, qb]])``.

    ``qa``, ``qb``, ``c`` broadcast against each other; the results have the broadcast shape.
    Closed forms are used when the activation has one unless ``quadrature=True``; otherwise
    2-D Gauss-Legendre quadrature with ``nodes`` points per dimension (docs/theory.md section 3).
    """
    act = get_activation(activation)
    qa, qb, c = torch.broadcast_tensors(*(torch.as_tensor(v) for v in (qa, qb, c)))
    if not quadrature:
        closed = _closed_form(act.name, qa, qb, c)
        if closed is not None:
            return closed
        if quadrature is False:
            raise ValueError(f"activation: {act.name!r} has no closed-form lazy kernel")
    return _quadrature(act, qa, qb, c, nodes)


def _quadrature(act: Activation, qa, qb, c, nodes: int):
    """Composite Gauss-Legendre in whitened coordinates, split where each argument crosses 0.

    ``a = l11 z1`` and ``b = l21 z1 + l22 z2`` with ``z ~ N(0, I_2)`` truncated to ``[-R, R]^2``.
    The outer integral is split at ``z1 = 0`` and, for every outer node, the inner one at the
    ``z2`` where ``b = 0``: kinks (relu) and the steepest part of saturating activations then sit
    on panel edges, which is what makes the rule converge fast.
    """
    shape = qa.shape
    dtype, device = qa.dtype, qa.device
    half = max(2, nodes // 2)
    x_np, w_np = np.polynomial.legendre.leggauss(half)
    x = torch.as_tensor(x_np, dtype=dtype, device=device)  # on [-1, 1]
    w = torch.as_tensor(w_np, dtype=dtype, device=device)
    R = QUADRATURE_RANGE
    norm = 1.0 / math.sqrt(2.0 * math.pi)
    # outer nodes: [-R, 0] and [0, R]
    z1 = torch.cat([0.5 * R * (x - 1.0), 0.5 * R * (x + 1.0)])
    w1 = torch.cat([0.5 * R * w, 0.5 * R * w]) * norm * torch.exp(-0.5 * z1**2)
    qa, qb, c = (v.reshape(-1) for v in (qa, qb, c))
    l11 = torch.sqrt(torch.clamp(qa, min=0.0))
    l21 = torch.where(l11 > 0, c / torch.where(l11 > 0, l11, torch.ones_like(l11)), torch.zeros_like(c))
    l22 = torch.sqrt(torch.clamp(qb - l21**2, min=0.0))
    out_phi = torch.empty_like(qa)
    out_dphi = torch.empty_like(qa)
    n1 = z1.numel()
    chunk = max(1, _QUAD_CHUNK_ELEMENTS // (n1 * 2 * half))
    for start in range(0, qa.numel(), chunk):
        sl = slice(start, start + chunk)
        a11, a21, a22 = l11[sl, None], l21[sl, None], l22[sl, None]
        # breakpoint of the inner integral, per pair and outer node: b = 0
        safe22 = torch.where(a22 > 0, a22, torch.ones_like(a22))
        zb = torch.where(a22 > 0, -a21 * z1 / safe22, torch.full_like(a21 * z1, R))
        zb = torch.clamp(zb, -R, R)[..., None]  # (n_pairs, n1, 1)
        lo_mid, lo_half = 0.5 * (zb - R), 0.5 * (zb + R)  # panel [-R, zb]
        hi_mid, hi_half = 0.5 * (zb + R), 0.5 * (R - zb)  # panel [zb, R]
        z2 = torch.cat([lo_mid + lo_half * x, hi_mid + hi_half * x], dim=-1)
        w2 = torch.cat([lo_half * w, hi_half * w], dim=-1) * norm * torch.exp(-0.5 * z2**2)
        b = (a21 * z1)[..., None] + a22[..., None] * z2  # (n_pairs, n1, 2*half)
        a = a11 * z1  # (n_pairs, n1)
        out_phi[sl] = (act.phi(a) * (act.phi(b) * w2).sum(-1) * w1).sum(-1)
        out_dphi[sl] = (act.dphi(a) * (act.dphi(b) * w2).sum(-1) * w1).sum(-1)
    return out_phi.reshape(shape), out_dphi.reshape(shape)


def kernel_moments(activation, cov: torch.Tensor, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E[phi(u) phi(u)^T], E[phi'(u) phi'(u)^T])`` for ``u ~ N(0, cov)``; cov is (n, n)."""
    d = torch.diagonal(cov)
    return gaussian_moments(activation, d[:, None], d[None, :], cov, **kw)


@dataclass(frozen=True)
class LazyKernels:
    """Initial (and, at gamma0 = 0, permanent) kernels over all points (docs/theory.md section 3).

    phi[l]:    (P_all, P_all) NNGP kernel Phi^{l+1}, l = 0 .. depth-1.
    phidot[l]: (P_all, P_all) Phidot^{l+1} = E[phi'(u) phi'(u)^T], u ~ N(0, Phi^l).
    g[l]:      (P_all, P_all) G^{l+1} = G^{l+2} * Phidot^{l+1}, with G^{L+1} = 1.
    ntk:       (P_all, P_all) K = sum_{l=0..L} G^{l+1} * Phi^l (Phi^0 = Kx).
    """

    phi: tuple[torch.Tensor, ...]
    phidot: tuple[torch.Tensor, ...]
    g: tuple[torch.Tensor, ...]
    ntk: torch.Tensor


def lazy_kernels(
    kx: torch.Tensor, depth: int, activation: Activation | str, **quadrature_kw
) -> LazyKernels:
    """Lazy kernels of a depth-``depth`` network from the input Gram matrix ``kx`` (P_all, P_all)."""
    act = get_activation(activation)
    phis, dots = [], []
    prev = kx
    for _ in range(depth):
        phi, dot = kernel_moments(act, prev, **quadrature_kw)
        phi = 0.5 * (phi + phi.T)
        dot = 0.5 * (dot + dot.T)
        phis.append(phi)
        dots.append(dot)
        prev = phi
    gs = [None] * depth
    g_next = torch.ones_like(kx)
    for l in reversed(range(depth)):
        g_next = g_next * dots[l]
        gs[l] = g_next
    ntk = gs[0] * kx
    for l in range(depth):
        g_above = gs[l + 1] if l + 1 < depth else torch.ones_like(kx)
        ntk = ntk + g_above * phis[l]
    return LazyKernels(tuple(phis), tuple(dots), tuple(gs), ntk)


def lazy_dynamics(
    ntk: torch.Tensor, y_train: torch.Tensor, eta: float, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of gradient descent on a fixed kernel (docs/theory.md section 3).

    ntk: (P_all, P_all) with the P training points first; y_train: (P,).
    Returns ``(delta, f)``: delta (steps+1, P) the training errors ``(I - eta K/P)^k y`` and
    f (steps+1, P_all) the centred outputs on all points, ``f(k+1) = f(k) + eta/P K[:, train] delta(k)``.
    Computed with one eigendecomposition of the training block (no loop over steps).
    """
    p = y_train.shape[0]
    k_tr = 0.5 * (ntk[:p, :p] + ntk[:p, :p].T)
    lam, vec = torch.linalg.eigh(k_tr)
    rate = eta * lam / p  # per-step decay of each eigenmode: delta_i(k) = (1 - rate_i)^k y_i
    ks = torch.arange(steps + 1, dtype=ntk.dtype, device=ntk.device)
    decay = (1.0 - rate)[None, :] ** ks[:, None]  # (T+1, P)
    y_eig = vec.T @ y_train
    delta = (decay * y_eig) @ vec.T
    # sum_{j<k} delta(j) = V diag(sum_{j<k} (1 - rate)^j) V^T y, a geometric series
    small = rate.abs() < 1e-12
    safe = torch.where(small, torch.ones_like(rate), rate)
    geom = torch.where(small, ks[:, None].expand_as(decay), (1.0 - decay) / safe)
    cum = (geom * y_eig) @ vec.T  # (T+1, P)
    f = (eta / p) * cum @ ntk[:, :p].T
    return delta, f
