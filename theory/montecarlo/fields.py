"""Single-site fields of one layer, batched over samples, by forward stepping in time.

docs/theory.md section 2. Index convention: a (time, point) pair ``(k, mu)`` is flattened to
``k * P_all + mu``, so a kernel over all pairs is an ``(n, n)`` matrix with ``n = (T+1) P_all``
and "earlier in time" means "earlier in the flattened index" (block-lower-triangular structure).

For layer ``l`` with sources ``u`` (from ``Phi^{l-1}``) and ``r`` (from ``G^{l+1}``)::

    h = u + C g,      C = A^{l-1} + (eta gamma0 / P) (Phi^{l-1} o [s < k]) diag(delta)
    z = r + D phi(h), D = B^l     + (eta gamma0 / P) (G^{l+1}  o [s < k]) diag(delta)
    g = phi'(h) z

``C`` is strictly causal (zero diagonal blocks), ``D`` causal (equal time allowed through ``B``);
``delta`` is ``Delta_nu(s)`` on training columns and 0 on test columns. Solving by stepping in
time: ``h(k)`` needs ``g(s < k)``; then ``z(k)`` needs ``phi(h(s <= k))``; then ``g(k)``.

The pathwise Jacobians of the same causal map give the responses exactly per sample
(``theory.montecarlo.jacobians``; a dense reference lives with the tests): with ``a = phi'(h)``, ``b = phi''(h) z`` and
``M = diag(b) + diag(a) D diag(a)``::

    dh/dr = (I - C M)^{-1} C diag(a)   ->  A^l     = < diag(a) dh/dr >
    dg/du = M (I - C M)^{-1}           ->  B^{l-1} = < dg/du >

``I - C M`` is unit lower triangular, so both are triangular solves (batched over samples).
"""

from __future__ import annotations

import torch

from ..activations import Activation

def coupling(base: torch.Tensor, kernel: torch.Tensor, delta: torch.Tensor, scale: float,
             n_points: int) -> torch.Tensor:
    """``base + scale * (kernel o [s < k]) diag(delta)`` as an ``(n, n)`` matrix.

    base: (n, n) response (or None for zero); kernel: (n, n); delta: (n,) with zeros on test
    columns. ``[s < k]`` is the strictly-causal block mask in time.
    """
    n = kernel.shape[0]
    t1 = n // n_points
    tk = torch.arange(t1, device=kernel.device).repeat_interleave(n_points)
    mask = (tk[None, :] < tk[:, None]).to(kernel.dtype)
    out = kernel * mask * (scale * delta)[None, :]
    return out if base is None else out + base


def solve_fields(u: torch.Tensor, r: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
                 act: Activation, n_points: int):
    """Forward-step the fields of one layer for all samples at once.

    u, r: (S, n) sources; c, d: (n, n) couplings as above. Returns ``(h, z, g, phi_h)``, each
    (S, n). Loops over time steps only (causality); work per step is one batched matmul.
    """
    s_count, n = u.shape
    p = n_points
    t1 = n // p
    h = torch.empty_like(u)
    z = torch.empty_like(u)
    g = torch.empty_like(u)
    ph = torch.empty_like(u)
    for k in range(t1):
        sl = slice(k * p, (k + 1) * p)
        hk = u[:, sl]
        if k:
            hk = hk + g[:, : k * p] @ c[sl, : k * p].T
        h[:, sl] = hk
        ph[:, sl] = act.phi(hk)
        zk = r[:, sl] + ph[:, : (k + 1) * p] @ d[sl, : (k + 1) * p].T
        z[:, sl] = zk
        g[:, sl] = act.dphi(hk) * zk
    return h, z, g, ph


def tangent_fields(dh0: torch.Tensor | None, dr: torch.Tensor | None, a: torch.Tensor,
                   b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, n_points: int):
    """Forward-mode tangent of :func:`solve_fields` along source directions (all samples at once).

    ``dh0`` (S, n) a tangent of ``u`` (or None), ``dr`` (S, n) a tangent of ``r`` (or None);
    ``a = phi'(h)``, ``b = phi''(h) z`` (S, n). Returns ``(dh, dphi)`` with ``dphi = a dh``.
    """
    ref = a
    s_count, n = ref.shape
    p = n_points
    t1 = n // p
    dh = torch.zeros_like(ref)
    dg = torch.zeros_like(ref)
    dp = torch.zeros_like(ref)
    for k in range(t1):
        sl = slice(k * p, (k + 1) * p)
        hk = dh0[:, sl].clone() if dh0 is not None else torch.zeros_like(ref[:, sl])
        if k:
            hk = hk + dg[:, : k * p] @ c[sl, : k * p].T
        dh[:, sl] = hk
        dp[:, sl] = a[:, sl] * hk
        zk = dp[:, : (k + 1) * p] @ d[sl, : (k + 1) * p].T
        if dr is not None:
            zk = zk + dr[:, sl]
        dg[:, sl] = b[:, sl] * hk + a[:, sl] * zk
    return dh, dp
