"""Assembly of the full ``H^l`` kernels of the linear DMFT from the march state
(docs/theory.md section 4; derivation in ``theory.linear.solver``).
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as fwAD


def _sym_update(out: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, alpha: float, edges, Pa: int) -> None:
    """``out += alpha (X Y^T + Y X^T)`` in place, for X (n x m) strictly causal (row time k,
    column s < k): rows/columns of times in ``[k0, k1)`` use only the first ``k1 - 1`` columns."""
    for k0, k1 in zip(edges[:-1], edges[1:]):
        kc = k1 - 1
        if kc <= 0:
            continue
        r = slice(k0 * Pa, k1 * Pa)
        out[r].addmm_(X[r, :kc], Y[:, :kc].T, alpha=alpha)
        out[:, r].addmm_(Y[:, :kc], X[r, :kc].T, alpha=alpha)


def assemble(st, kx: torch.Tensor, eps, *, depth: int, time_blocks: int = 6) -> list:
    """``H^l`` for l = 1..L as (m, Pa, m, Pa) tensors from the march state (module docstring).

    With ``U = Ahat dhat`` the update of the module docstring is a rank-``m`` symmetric one,
    ``H^l = H^{l-1} + eps (Ahat R^T + R Ahat^T)`` with ``R = Psi^{l-1} dhat^T + Ahat S / 2`` and
    ``S = eps dhat psi^{l-1} dhat^T + G^{l+1}`` (n x m, ``n = m Pa``): two GEMMs of inner width m
    per layer, written straight into the new ``H^l`` (no transposed pass). ``Ahat`` is strictly
    causal (row time k, column time s < k), so the rows (and columns) of times in
    ``[k0, k1)`` need only the first ``k1 - 1`` columns of ``Ahat`` and ``R``: the products run
    over ``time_blocks`` blocks of growing inner width (about 0.6 of the dense flops).
    With a forward-mode dual ``eps`` (``theory.linear.perturbative``) the small factors ``S``, ``R`` go
    through torch's forward AD and the (n x n) products apply the product rule explicitly to the
    primal and tangent parts (same blocked GEMMs; the terms with a zero primal ``eps`` are skipped).
    """
    L = depth
    m, Pa = st.f.shape
    n = m * Pa
    prev = kx[None, :, None, :].expand(m, Pa, m, Pa).reshape(n, n)
    edges = [round(i * m / time_blocks) for i in range(time_blocks + 1)]
    dual = isinstance(eps, torch.Tensor)
    if dual:
        e0, e1 = (0.0 if t is None else float(t) for t in fwAD.unpack_dual(eps))
        prev1 = torch.zeros_like(prev)
    H = []
    for l in range(1, L + 1):
        dh, Ah = st.d[l], st.A[l].reshape(n, m)
        S = eps * (dh @ st.psi[l - 1] @ dh.T) + st.G[l + 1]
        R = st.Psi[l - 1].reshape(n, m) @ dh.T + 0.5 * (Ah @ S)
        if not dual:
            new = prev.clone()
            _sym_update(new, Ah, R, eps, edges, Pa)
            H.append(new.reshape(m, Pa, m, Pa))
            prev = new
            continue
        (A0, A1), (R0, R1) = (_parts(t) for t in (Ah, R))
        new0, new1 = prev.clone(), prev1.clone()
        if e0 != 0.0:
            _sym_update(new0, A0, R0, e0, edges, Pa)
            _sym_update(new1, A1, R0, e0, edges, Pa)
            _sym_update(new1, A0, R1, e0, edges, Pa)
        _sym_update(new1, A0, R0, e1, edges, Pa)
        H.append(fwAD.make_dual(new0, new1).reshape(m, Pa, m, Pa))
        prev, prev1 = new0, new1
    return H


def _parts(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Primal and tangent (zeros if none) of a possibly dual tensor, as plain tensors."""
    p, d = fwAD.unpack_dual(t)
    return p, torch.zeros_like(p) if d is None else d


