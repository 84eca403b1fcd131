"""A posteriori check of the linear DMFT: one whole-trajectory pass of the fixed-point map.

The march (``theory.linear.march``) fills the kernels row by row. This module re-evaluates the
self-consistency equations of docs/theory.md section 4 on the finished trajectories with dense
whole-trajectory linear algebra (a different code path: triangular solves instead of forward
substitution, full projections of the assembled ``H^l``) and returns the largest relative change.
At the exact fixed point it is round-off; it is reported as ``Solution.residual``.
"""

from __future__ import annotations

import torch


def _rel(new: torch.Tensor, old: torch.Tensor) -> float:
    scale = float(old.abs().max())
    return float((new - old).abs().max()) / max(scale, 1e-300)


def residual(st, H: list, kx: torch.Tensor, y: torch.Tensor, *, depth, eps, a, gia, exact_update) -> float:
    """Largest relative change of (Delta, G^l, H^l pi^T, Ahat^l, bhat^l) under one pass of the map.

    ``st`` is a finished :class:`theory.linear.march.MarchState`, ``H[l]`` the assembled
    (m, Pa, m, Pa) kernels (``H[0]`` may be None: it is ``Kx``). Shapes as in ``theory.linear.march``.
    """
    L = depth
    m, Pa, P = st.f.shape[0], kx.shape[0], y.shape[0]
    dl = st.delta  # (m, P)
    eye = torch.eye(m, dtype=kx.dtype, device=kx.device)
    mask = torch.tril(torch.ones(m, m, dtype=kx.dtype, device=kx.device), -1)

    def proj(Hl):  # Psi = H pi^T (m, Pa, m), psi = pi H pi^T (m, m)
        Ps = torch.einsum("kajp,jp->kaj", Hl[:, :, :, :P], dl)
        return Ps, torch.einsum("kpj,kp->kj", Ps[:, :P], dl)

    Ps0 = (kx[:, :P] @ dl.T)[None].expand(m, Pa, m)
    projs = [(Ps0, torch.einsum("kpj,kp->kj", Ps0[:, :P], dl))] + [proj(H[l]) for l in range(1, L + 1)]
    res = []
    X = None
    for l in range(1, L + 1):
        Ps, ps = projs[l - 1]
        Ch = a * Ps * mask[:, None, :]
        if l > 1 and not gia:
            Ch = Ch + st.A[l - 1]
        dh = a * mask * st.G[l + 1]
        if l < L and not gia:
            dh = dh + st.bh[l + 1]
        ct = torch.einsum("kps,kp->ks", Ch[:, :P], dl)
        Q = eye - eps * (dh @ ct)
        V = torch.linalg.solve_triangular(Q, eye, upper=False, unitriangular=True)
        Ah = (Ch.reshape(m * Pa, m) @ V).reshape(m, Pa, m)
        bh = V @ dh
        G = V @ st.G[l + 1] @ V.T + eps * (bh @ ps @ bh.T)
        at = torch.einsum("kps,kp->ks", Ah[:, :P], dl)
        Ad = (Ah.reshape(m * Pa, m) @ dh).reshape(m, Pa, m)
        first = Ps + eps * (Ad.reshape(m * Pa, m) @ ps).reshape(m, Pa, m)
        Psn = first.reshape(m * Pa, m) @ (eye + eps * at @ dh).T + eps * (
            Ah.reshape(m * Pa, m) @ st.G[l + 1] @ at.T
        )
        res += [_rel(Ah, st.A[l]), _rel(bh, st.bh[l]), _rel(G, st.G[l])]
        res.append(_rel(Psn.reshape(m, Pa, m), projs[l][0]))
        if l == L:
            X = first.reshape(m * Pa, m) @ bh.T + (Ah.reshape(m * Pa, m) @ st.G[L + 1] @ V.T)
            X = X.reshape(m, Pa, m)
    if exact_update:
        f = torch.diagonal(X, dim1=0, dim2=2).T  # (m, Pa): f(k) = Xhat(k, . ; k)
        if gia and L > 1:  # first-order terms of layers 0..L-2 (see theory.linear)
            k_low = sum(torch.diagonal(st.G[l + 1])[:, None, None] * st.hdiag[l] for l in range(L - 1))
            steps = a * torch.einsum("kab,kb->ka", k_low[:, :, :P], dl)
            f = f + torch.cat([torch.zeros_like(steps[:1]), torch.cumsum(steps, 0)[:-1]])
    else:
        steps = a * torch.einsum("kab,kb->ka", st.ntk[:, :, :P], dl)
        f = torch.cat([torch.zeros_like(steps[:1]), torch.cumsum(steps, 0)[:-1]])
    res.append(_rel(y - f[:, :P], dl))
    return max(res)
