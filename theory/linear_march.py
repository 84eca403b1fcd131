"""Time marching of the deep linear DMFT (THEORY.md sections 2 and 4); see ``theory.linear``.

Everything here is written in the rescaled variables of ``theory.linear``'s derivation: with
``eps = gamma0**2`` and ``a = eta / P`` the operators are ``C = gamma0 Chat``,
``D = gamma0 dhat pi`` and the responses ``A = gamma0 Ahat``, ``B = gamma0 bhat pi``, so that every
kernel is a smooth function of ``eps`` (no division by ``gamma0`` anywhere; forward-mode autodiff
in ``eps`` at ``eps = 0`` gives the perturbative coefficients).

Shapes (m = T+1 times, Pa = P_all points, P training points), per layer l = 1..L:
    A[l], U[l]:             (m, Pa, m)   Ahat^l, Ahat^l dhat^l  (row k, point mu, time s < k)
    d[l], V[l], bh[l]:      (m, m)       dhat^l, V^l = (Q^l)^{-1}, bhat^{l-1} = V^l dhat^l
    ct[l], at[l], ut[l]:    (m, m)       pi Chat^l, pi Ahat^l, pi U^l
and for l = 0..L: Psi[l] (m, Pa, m) = H^l pi^T, psi[l] (m, m) = pi H^l pi^T, hdiag[l] (m, Pa, Pa)
= H^l(k, k); G[l] (m, m) for l = 1..L+1 (G[L+1] = 1). Row k of ``Chat^l`` and of
``W^l = Ahat^l S^l`` (``S^l = eps dhat psi^{l-1} dhat^T + G^{l+1}``) are used within their sweep only.

Speed: the march is ~60 small operations per layer and time row, so per-call overhead dominates
(the flops are ``O(L P_all T^3)`` but tiny). For a plain float ``eps`` on the CPU it therefore runs
on NumPy arrays (a few times less overhead per operation than torch) with one BLAS thread; the
same code runs on torch tensors for other devices and for a forward-mode dual ``eps``
(``theory.perturbative``). The returned state always holds torch tensors.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields

import numpy as np
import torch

from . import divergence


@dataclass
class MarchState:
    """All trajectories of one march (filled row by row); see the module docstring for shapes."""

    delta: torch.Tensor  # (m, P)
    f: torch.Tensor  # (m, Pa) centred outputs
    A: list
    U: list
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


@contextlib.contextmanager
def _one_blas_thread():
    """One NumPy BLAS thread (threadpoolctl when installed; otherwise leave BLAS alone)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional dependency
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


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
    backend: str = "auto",
) -> MarchState:
    """March the linear DMFT forward in time, one row (time step) at a time.

    kx: (Pa, Pa) input Gram matrix, training points first; y: (P,) targets. ``eps`` is
    ``gamma0**2`` (a float or a 0-dim tensor, possibly a forward-mode dual number). ``a = eta/P``.
    All couplings are strictly causal in a linear network, so row ``k`` of every kernel and
    response follows in one sweep from rows ``< k`` and ``Delta(< k)``; then ``f~(k)`` and
    ``Delta(k)``. ``blowup``: stop (and report why) once the loss or a kernel grows by this
    factor over its initial value, or anything becomes non-finite. ``backend``: "numpy" (CPU and
    a float ``eps`` only), "torch", or "auto" (NumPy when it applies).
    """
    numpy_ok = kx.device.type == "cpu" and not isinstance(eps, torch.Tensor)
    if backend not in ("auto", "numpy", "torch") or (backend == "numpy" and not numpy_ok):
        raise ValueError(f"backend: must be 'auto', 'torch' or (CPU, float eps) 'numpy', got {backend!r}")
    kw = dict(depth=depth, a=float(a), steps=steps, gia=gia, exact_update=exact_update, blowup=blowup)
    if numpy_ok and backend != "torch":
        with _one_blas_thread():
            zeros = lambda *s: np.zeros(s, kx.numpy().dtype)  # noqa: E731
            st = _march(kx.numpy(), y.numpy(), eps=float(eps), zeros=zeros, where=np.where, arange=np.arange, **kw)
        for fl in fields(st):
            v = getattr(st, fl.name)
            if isinstance(v, np.ndarray):
                setattr(st, fl.name, torch.from_numpy(v))
            elif isinstance(v, list):
                setattr(st, fl.name, [x if x is None else torch.from_numpy(np.ascontiguousarray(x)) for x in v])
        return st
    zeros = lambda *s: torch.zeros(s, dtype=kx.dtype, device=kx.device)  # noqa: E731
    arange = lambda K: torch.arange(K, device=kx.device)  # noqa: E731
    return _march(kx, y, eps=eps, zeros=zeros, where=torch.where, arange=arange, **kw)


def _num(x) -> float:
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


def _march(kx, y, *, depth, eps, a, steps, gia, exact_update, blowup, zeros, **ops) -> MarchState:
    """The march on NumPy arrays or torch tensors (only operations common to both are used;
    ``zeros(*shape)``, ``where`` and ``arange`` come from the backend)."""
    L, m, Pa, P = depth, steps + 1, kx.shape[0], y.shape[0]
    lay = lambda make: [None] + [make() for _ in range(L)]  # noqa: E731  (index = layer)
    A, U = (lay(lambda: zeros(m, Pa, m)) for _ in range(2))
    d, bh, ct, at, ut = (lay(lambda: zeros(m, m)) for _ in range(5))
    V = lay(lambda: zeros(m, m))
    for l in range(1, L + 1):
        V[l].reshape(-1)[:: m + 1] = 1.0  # unit diagonal (Q is unit lower triangular)
    G = lay(lambda: zeros(m, m)) + [zeros(m, m) + 1.0]
    Psi = [zeros(m, Pa, m) for _ in range(L + 1)]
    psi = [zeros(m, m) for _ in range(L + 1)]
    hdiag = [zeros(m, Pa, Pa) + kx] + [zeros(m, Pa, Pa) for _ in range(L)]
    ntk = zeros(m, Pa, Pa)
    delta, f = zeros(m, P), zeros(m, Pa)
    kx_t, kx_tt = kx[:, :P], kx[:P, :P]
    Crow = [None] * (L + 1)
    low = zeros(Pa)  # GIA only: first-order output from layers 0..L-2 (see the output update)
    scale0 = None
    reason = None
    k_done = m
    for k in range(m):
        # ---------------- downward pass: dhat, V, bhat, G (rows k), needs ct, psi rows < k
        for l in range(L, 0, -1):
            dl, Vl, bl, Gn, Gl = d[l], V[l], bh[l], G[l + 1], G[l]
            if k:
                drow = a * Gn[k, :k]
                if l < L and not gia:
                    drow = drow + bh[l + 1][k, :k]
                dl[k, :k] = drow
                vk = eps * ((drow @ ct[l][:k, :k]) @ Vl[:k, :k])
                Vl[k, :k] = vk
                brow = vk @ dl[:k, :k] + drow
                bl[k, :k] = brow
                vrow = Vl[k, : k + 1]
                row = (vrow @ Gn[: k + 1, : k + 1]) @ Vl[: k + 1, : k + 1].T
                row = row + eps * ((brow @ psi[l - 1][:k, :k]) @ bl[: k + 1, :k].T)
                Gl[k, : k + 1] = row
                Gl[:k, k] = row[:k]
            else:
                Gl[0, 0] = Gn[0, 0]
        # ---------------- upward pass: Chat, Ahat, U, Psi rows (s < k), H(k, k)
        first = None
        for l in range(1, L + 1):
            if not k:
                hdiag[l][0] = hdiag[l - 1][0]
                Crow[l] = zeros(Pa, 0)
                continue
            Pp = Psi[l - 1][k, :, :k]
            c = a * Pp
            if l > 1 and not gia:
                c = c + A[l - 1][k, :, :k]
            Crow[l] = c
            dk_, pk = d[l][:k, :k], psi[l - 1][:k, :k]
            Ar = c @ V[l][:k, :k]
            A[l][k, :, :k] = Ar
            Ur = Ar @ dk_
            U[l][k, :, :k] = Ur
            Up = Ur @ pk  # psi is exactly symmetric
            Wr = Ar @ G[l + 1][:k, :k] + eps * (Up @ dk_.T)
            Psi[l][k, :, :k] = Pp + eps * (Up + Pp @ ut[l][:k, :k].T + Wr @ at[l][:k, :k].T)
            y_kk = Ur @ Pp.T + 0.5 * (Wr @ Ar.T)
            hdiag[l][k] = hdiag[l - 1][k] + eps * (y_kk + y_kk.T)
            if l == L:
                first = Pp + eps * Up
        ntk[k] = sum(G[l + 1][k, k] * hdiag[l][k] for l in range(L + 1))
        # ---------------- output update: f~(k), Delta(k)
        if k:
            if exact_update:
                # f~(k) = <z^L(k) h^L(k)> / gamma0 = Xhat^L(k, . ; k)
                f[k] = first @ bh[L][k, :k] + A[L][k, :, :k].sum(-1) * V[L][k, : k + 1].sum()
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
        dk = y - f[k, :P]
        delta[k] = dk
        # ---------------- completions that need Delta(k): Psi(:, :, k), psi(k, :), ct, at, ut rows
        Psi[0][:, :, k] = kx_t @ dk
        prow = (dk @ kx_tt) @ delta[: k + 1].T
        psi[0][k, : k + 1] = prow
        psi[0][:k, k] = prow[:k]
        for l in range(1, L + 1):
            ct[l][k, :k] = dk @ Crow[l][:P]
            atk = dk @ A[l][k, :P, :k]
            at[l][k, :k] = atk
            utk = dk @ U[l][k, :P, :k]
            ut[l][k, :k] = utk
            # equal-time entry Psi(k, ., k); the entries Psi(j, ., k), j < k, only feed the
            # assembly and are filled after the march in one batched pass (_fill_upper)
            dk_ = d[l][:k, :k]
            s_at = eps * (dk_ @ (psi[l - 1][:k, :k] @ (atk @ dk_))) + G[l + 1][:k, :k] @ atk
            Psi[l][k, :, k] = Psi[l - 1][k, :, k] + eps * (
                U[l][k, :, :k] @ psi[l - 1][k, :k] + Psi[l - 1][k, :, :k] @ utk + A[l][k, :, :k] @ s_at
            )
            prow = dk @ Psi[l][k, :P, : k + 1]
            psi[l][k, : k + 1] = prow
            psi[l][:k, k] = prow[:k]
        # ---------------- divergence watch
        size = divergence.worst(_num((dk * dk).mean()), _num(abs(ntk[k]).max()))
        if scale0 is None:
            scale0 = size
        if divergence.blew_up(size, scale0, blowup):
            k_done = k
            reason = divergence.reason(k, blowup)
            break
    _fill_upper(Psi, psi, A, U, d, at, ut, G, eps=eps, rows=k_done + 1 if reason else m, **ops)
    return MarchState(delta, f, A, U, d, V, bh, ct, at, ut, G, Psi, psi, hdiag, ntk, k_done, reason)


def _fill_upper(Psi, psi, A, U, d, at, ut, G, *, eps, rows, where, arange) -> None:
    """Fill ``Psi^l(j, ., s)`` for ``j < s < rows`` (the march computes ``s <= j`` only).

    Whole-trajectory form of the march's Psi recursion (``theory.linear``; psi is symmetric):
    ``Psi^l = Psi^{l-1} + eps (U psi^{l-1} + Psi^{l-1} ut^T + Ahat S at^T)``, with
    ``S = eps dhat psi^{l-1} dhat^T + G^{l+1}``, layer by layer: three (K Pa x K) x (K x K) GEMMs
    per layer instead of ``O(P_all k^2)`` work per time row inside the march.
    """
    K = rows
    Pa = Psi[0].shape[1]
    j = arange(K)
    upper = (j[:, None] < j[None, :])[:, None, :]  # (K, 1, K): j < s
    for l in range(1, len(Psi)):
        P0 = Psi[l - 1][:K, :, :K]
        dK, pK = d[l][:K, :K], psi[l - 1][:K, :K]
        sat = (eps * (dK @ pK @ dK.T) + G[l + 1][:K, :K]) @ at[l][:K, :K].T
        flat = lambda t: t[:K].reshape(K * Pa, t.shape[-1])[:, :K]  # noqa: E731
        full = P0 + eps * (flat(U[l]) @ pK + flat(Psi[l - 1]) @ ut[l][:K, :K].T + flat(A[l]) @ sat).reshape(K, Pa, K)
        Psi[l][:K, :, :K] = where(upper, full, Psi[l][:K, :, :K])
