"""Time marching of the deep linear DMFT (THEORY.md sections 2 and 4); see ``theory.linear``.

Everything here is written in the rescaled variables of ``theory.linear``'s derivation: with
``eps = gamma0**2`` and ``a = eta / P`` the operators are ``C = gamma0 Chat``,
``D = gamma0 dhat pi`` and the responses ``A = gamma0 Ahat``, ``B = gamma0 bhat pi``, so that every
kernel is a smooth function of ``eps`` (no division by ``gamma0`` anywhere; forward-mode autodiff
in ``eps`` at ``eps = 0`` gives the perturbative coefficients).

Shapes (m = T+1 times, Pa = P_all points, P training points), per layer l = 1..L:
    C[l], A[l], U[l]:       (m, Pa, m)   Chat^l, Ahat^l, Ahat^l dhat^l  (row k, point mu, time s)
    W[l]:                   (m, Pa, m)   Ahat^l S^l, S^l = eps dhat psi^{l-1} dhat^T + G^{l+1}; row k
                                         holds only s < k (all the march needs)
    d[l], V[l], bh[l]:      (m, m)       dhat^l, V^l = (Q^l)^{-1}, bhat^{l-1} = V^l dhat^l
    ct[l], at[l], ut[l]:    (m, m)       pi Chat^l, pi Ahat^l, pi U^l
and for l = 0..L: Psi[l] (m, Pa, m) = H^l pi^T, psi[l] (m, m) = pi H^l pi^T, hdiag[l] (m, Pa, Pa)
= H^l(k, k); G[l] (m, m) for l = 1..L+1 (G[L+1] = 1).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch


@dataclass
class MarchState:
    """All trajectories of one march (filled row by row); see the module docstring for shapes."""

    delta: torch.Tensor  # (m, P)
    f: torch.Tensor  # (m, Pa) centred outputs
    C: list
    A: list
    U: list
    W: list
    d: list
    V: list
    bh: list
    ct: list
    at: list
    ut: list
    G: list
    Psi: list
    psi: list
    hdiag: list
    ntk: torch.Tensor  # (m, Pa, Pa)
    steps_done: int  # number of time rows that are valid (m unless diverged)
    reason: str | None


@contextlib.contextmanager
def intra_op_threads(n: int | None):
    """Temporarily set torch's intra-op thread count (the march is many tiny ops: extra threads
    only add synchronisation, which is ruinous on a loaded machine). ``None`` leaves it alone."""
    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def march(
    kx: torch.Tensor,
    y: torch.Tensor,
    *,
    depth: int,
    eps,
    a: float,
    steps: int,
    gia: bool,
    exact_update: bool,
    blowup: float,
) -> MarchState:
    """March the linear DMFT forward in time, one row (time step) at a time.

    kx: (Pa, Pa) input Gram matrix, training points first; y: (P,) targets. ``eps`` is
    ``gamma0**2`` (a float or a 0-dim tensor, possibly a forward-mode dual number). ``a = eta/P``.
    All couplings are strictly causal in a linear network, so row ``k`` of every kernel and
    response follows in one sweep from rows ``< k`` and ``Delta(< k)``; then ``f~(k)`` and
    ``Delta(k)``. ``blowup``: stop (and report why) once the loss or a kernel grows by this
    factor over its initial value, or anything becomes non-finite.
    """
    L, m, Pa, P = depth, steps + 1, kx.shape[0], y.shape[0]
    opts = dict(dtype=kx.dtype, device=kx.device)
    zeros = lambda *s: torch.zeros(*s, **opts)  # noqa: E731
    lay = lambda make: [None] + [make() for _ in range(L)]  # noqa: E731  (index = layer)
    C, A, U, W = (lay(lambda: zeros(m, Pa, m)) for _ in range(4))
    d, V, bh, ct, at, ut = (lay(lambda: zeros(m, m)) for _ in range(6))
    G = lay(lambda: zeros(m, m)) + [torch.ones(m, m, **opts)]
    Psi = [zeros(m, Pa, m) for _ in range(L + 1)]
    psi = [zeros(m, m) for _ in range(L + 1)]
    hdiag = [kx[None].expand(m, Pa, Pa)] + [zeros(m, Pa, Pa) for _ in range(L)]
    ntk = zeros(m, Pa, Pa)
    delta, f = zeros(m, P), zeros(m, Pa)
    low = zeros(Pa)  # GIA only: first-order output from layers 0..L-2 (see the output update)
    kx_t = kx[:, :P]
    scale0 = None
    reason = None
    k_done = m
    for k in range(m):
        # ---------------- downward pass: dhat, V, bhat, G (rows k), needs ct, psi rows < k
        for l in range(L, 0, -1):
            if l < L and not gia:
                d[l][k, :k] = bh[l + 1][k, :k]
            d[l][k, :k] += a * G[l + 1][k, :k]
            V[l][k, k] = 1.0
            if k:
                dc = d[l][k, :k] @ ct[l][:k, :k]
                V[l][k, :k] = eps * (dc @ V[l][:k, :k])
            bh[l][k, :k] = V[l][k, : k + 1] @ d[l][: k + 1, :k]
            vrow = V[l][k, : k + 1]
            row = (vrow @ G[l + 1][: k + 1, : k + 1]) @ V[l][: k + 1, : k + 1].T
            if k:
                b = bh[l][k, :k]
                row = row + eps * ((b @ psi[l - 1][:k, :k]) @ bh[l][: k + 1, :k].T)
            G[l][k, : k + 1] = row
            G[l][:k, k] = row[:k]
        # ---------------- upward pass: Chat, Ahat, U, W, Psi rows (s < k), H(k, k)
        for l in range(1, L + 1):
            if k:
                if l > 1 and not gia:
                    C[l][k, :, :k] = A[l - 1][k, :, :k]
                C[l][k, :, :k] += a * Psi[l - 1][k, :, :k]
                A[l][k, :, :k] = C[l][k, :, :k] @ V[l][:k, :k]
                U[l][k, :, :k] = A[l][k, :, :k] @ d[l][:k, :k]
                W[l][k, :, :k] = A[l][k, :, :k] @ G[l + 1][:k, :k] + eps * (
                    (U[l][k, :, :k] @ psi[l - 1][:k, :k]) @ d[l][:k, :k].T
                )
                Psi[l][k, :, :k] = Psi[l - 1][k, :, :k] + eps * (
                    U[l][k, :, :k] @ psi[l - 1][:k, :k].T
                    + Psi[l - 1][k, :, :k] @ ut[l][:k, :k].T
                    + W[l][k, :, :k] @ at[l][:k, :k].T
                )
                y_kk = U[l][k, :, :k] @ Psi[l - 1][k, :, :k].T + 0.5 * (W[l][k, :, :k] @ A[l][k, :, :k].T)
                hdiag[l][k] = hdiag[l - 1][k] + eps * (y_kk + y_kk.T)
            else:
                hdiag[l][k] = hdiag[l - 1][k]
        ntk[k] = sum(G[l + 1][k, k] * hdiag[l][k] for l in range(L + 1))
        # ---------------- output update: f~(k), Delta(k)
        if k:
            if exact_update:
                # f~(k) = <z^L(k) h^L(k)> / gamma0 = Xhat^L(k, . ; k)
                first = Psi[L - 1][k, :, :k] + eps * (U[L][k, :, :k] @ psi[L - 1][:k, :k])
                f[k] = first @ bh[L][k, :k] + A[L][k].sum(-1) * V[L][k, : k + 1].sum()
                if gia and L > 1:
                    # GIA: <z^L h^L> / gamma0 holds the NTK terms of layers L, L-1 only (the
                    # lower ones arrive through the responses A, which GIA drops); add those
                    # first-order, so that gamma0 -> 0 gives the lazy dynamics.
                    j = k - 1
                    k_low = sum(G[l + 1][j, j] * hdiag[l][j][:, :P] for l in range(L - 1))
                    low = low + a * (k_low @ delta[j])
                    f[k] = f[k] + low
            else:
                f[k] = f[k - 1] + a * (ntk[k - 1][:, :P] @ delta[k - 1])
        delta[k] = y - f[k, :P]
        dk = delta[k]
        # ---------------- completions that need Delta(k): Psi(:, :, k), psi(k, :), ct, at, ut rows
        Psi[0][:, :, k] = (kx_t @ dk)[None, :]
        psi[0][k, : k + 1] = (dk @ kx[:P, :P]) @ delta[: k + 1].T
        psi[0][:k, k] = psi[0][k, :k]
        for l in range(1, L + 1):
            ct[l][k, :k] = dk @ C[l][k, :P, :k]
            at[l][k, :k] = dk @ A[l][k, :P, :k]
            ut[l][k, :k] = dk @ U[l][k, :P, :k]
            j = slice(0, k + 1)
            # W(j, ., s) is stored for s < j only; use Ahat S at^T with S = eps d psi d^T + G^{l+1}
            s_at = eps * (d[l][:, :k] @ (psi[l - 1][:k, :k] @ (d[l][:k, :k].T @ at[l][k, :k])))
            s_at = s_at + G[l + 1][:, :k] @ at[l][k, :k]
            Psi[l][j, :, k] = Psi[l - 1][j, :, k] + eps * (
                U[l][j] @ psi[l - 1][k] + Psi[l - 1][j] @ ut[l][k] + A[l][j] @ s_at
            )
            psi[l][k, : k + 1] = dk @ Psi[l][k, :P, : k + 1]
            psi[l][:k, k] = psi[l][k, :k]
        # ---------------- divergence watch
        size = max(float(dk.detach().pow(2).mean()), float(ntk[k].detach().abs().max()))
        if scale0 is None:
            scale0 = max(size, 1e-300)
        if not math.isfinite(size) or size > blowup * scale0:
            k_done = k
            reason = (
                f"kernels or loss blew up at step {k} (growth beyond {blowup:g} x the initial "
                f"scale, or non-finite): gamma0 is past the critical value for this eta, where "
                f"the dynamics of gradient descent diverge"
            )
            break
    return MarchState(delta, f, C, A, U, W, d, V, bh, ct, at, ut, G, Psi, psi, hdiag, ntk, k_done, reason)
