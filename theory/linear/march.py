"""Time marching of the deep linear DMFT (docs/theory.md sections 2 and 4); see ``theory.linear``.

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
(``theory.linear.perturbative``). The returned state always holds torch tensors.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields

import numpy as np
import torch

from .. import divergence


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


@dataclass(frozen=True)
class _Ctx:
    """Constants of one march: sizes, ``eps = gamma0^2``, ``a = eta / P``, the scheme flags and
    the backend's ``zeros``."""

    L: int
    m: int
    Pa: int
    P: int
    eps: object
    a: float
    gia: bool
    exact: bool
    zeros: object


def _new_state(cx: _Ctx, kx) -> MarchState:
    """Every trajectory of the march, allocated (index = layer; see the module docstring)."""
    L, m, Pa, zeros = cx.L, cx.m, cx.Pa, cx.zeros
    lay = lambda make: [None] + [make() for _ in range(L)]  # noqa: E731
    V = lay(lambda: zeros(m, m))
    for l in range(1, L + 1):
        V[l].reshape(-1)[:: m + 1] = 1.0  # unit diagonal (Q is unit lower triangular)
    return MarchState(
        delta=zeros(m, cx.P), f=zeros(m, Pa), A=lay(lambda: zeros(m, Pa, m)),
        U=lay(lambda: zeros(m, Pa, m)), d=lay(lambda: zeros(m, m)), V=V, bh=lay(lambda: zeros(m, m)),
        ct=lay(lambda: zeros(m, m)), at=lay(lambda: zeros(m, m)), ut=lay(lambda: zeros(m, m)),
        G=lay(lambda: zeros(m, m)) + [zeros(m, m) + 1.0], Psi=[zeros(m, Pa, m) for _ in range(L + 1)],
        psi=[zeros(m, m) for _ in range(L + 1)],
        hdiag=[zeros(m, Pa, Pa) + kx] + [zeros(m, Pa, Pa) for _ in range(L)],
        ntk=zeros(m, Pa, Pa), steps_done=m, reason=None)


def _march(kx, y, *, depth, eps, a, steps, gia, exact_update, blowup, zeros, **ops) -> MarchState:
    """The march on NumPy arrays or torch tensors (only operations common to both are used;
    ``zeros(*shape)``, ``where`` and ``arange`` come from the backend). Row ``k`` of every
    trajectory: the downward pass, the upward pass, the output, the completions that need
    ``Delta(k)``, then the divergence watch (``theory.divergence``)."""
    cx = _Ctx(L=depth, m=steps + 1, Pa=kx.shape[0], P=y.shape[0], eps=eps, a=a, gia=gia,
              exact=exact_update, zeros=zeros)
    st = _new_state(cx, kx)
    crow = [None] * (cx.L + 1)
    low = zeros(cx.Pa)  # GIA only: first-order output from layers 0..L-2 (see _output)
    scale0 = None
    for k in range(cx.m):
        _down(st, cx, k)
        first = _up(st, cx, k, crow)
        st.ntk[k] = sum(st.G[l + 1][k, k] * st.hdiag[l][k] for l in range(cx.L + 1))
        low = _output(st, cx, k, first, low)
        _complete(st, cx, k, crow, kx, y)
        dk = st.delta[k]
        size = divergence.worst(_num((dk * dk).mean()), _num(abs(st.ntk[k]).max()))
        scale0 = size if scale0 is None else scale0
        if divergence.blew_up(size, scale0, blowup):
            st.steps_done, st.reason = k, divergence.reason(k, blowup)
            break
    rows = st.steps_done + 1 if st.reason else cx.m
    _fill_upper(st.Psi, st.psi, st.A, st.U, st.d, st.at, st.ut, st.G, eps=eps, rows=rows, **ops)
    return st


def _down(st: MarchState, cx: _Ctx, k: int) -> None:
    """Downward pass, row k: dhat, V, bhat, G (needs ct, psi rows < k)."""
    eps, a = cx.eps, cx.a
    for l in range(cx.L, 0, -1):
        dl, Vl, bl, Gn, Gl = st.d[l], st.V[l], st.bh[l], st.G[l + 1], st.G[l]
        if not k:
            Gl[0, 0] = Gn[0, 0]
            continue
        drow = a * Gn[k, :k]
        if l < cx.L and not cx.gia:
            drow = drow + st.bh[l + 1][k, :k]
        dl[k, :k] = drow
        vk = eps * ((drow @ st.ct[l][:k, :k]) @ Vl[:k, :k])
        Vl[k, :k] = vk
        brow = vk @ dl[:k, :k] + drow
        bl[k, :k] = brow
        vrow = Vl[k, : k + 1]
        row = (vrow @ Gn[: k + 1, : k + 1]) @ Vl[: k + 1, : k + 1].T
        row = row + eps * ((brow @ st.psi[l - 1][:k, :k]) @ bl[: k + 1, :k].T)
        Gl[k, : k + 1] = row
        Gl[:k, k] = row[:k]


def _up(st: MarchState, cx: _Ctx, k: int, crow: list):
    """Upward pass, row k: Chat (kept in ``crow``), Ahat, U, Psi rows (s < k), H(k, k).
    Returns the top layer's ``Psi^{L-1} + eps U psi^{L-1}`` row (for the exact output)."""
    eps, a, first = cx.eps, cx.a, None
    for l in range(1, cx.L + 1):
        if not k:
            st.hdiag[l][0] = st.hdiag[l - 1][0]
            crow[l] = cx.zeros(cx.Pa, 0)
            continue
        Pp = st.Psi[l - 1][k, :, :k]
        c = a * Pp
        if l > 1 and not cx.gia:
            c = c + st.A[l - 1][k, :, :k]
        crow[l] = c
        dk_, pk = st.d[l][:k, :k], st.psi[l - 1][:k, :k]
        Ar = c @ st.V[l][:k, :k]
        st.A[l][k, :, :k] = Ar
        Ur = Ar @ dk_
        st.U[l][k, :, :k] = Ur
        Up = Ur @ pk  # psi is exactly symmetric
        Wr = Ar @ st.G[l + 1][:k, :k] + eps * (Up @ dk_.T)
        st.Psi[l][k, :, :k] = Pp + eps * (Up + Pp @ st.ut[l][:k, :k].T + Wr @ st.at[l][:k, :k].T)
        y_kk = Ur @ Pp.T + 0.5 * (Wr @ Ar.T)
        st.hdiag[l][k] = st.hdiag[l - 1][k] + eps * (y_kk + y_kk.T)
        if l == cx.L:
            first = Pp + eps * Up
    return first


def _output(st: MarchState, cx: _Ctx, k: int, first, low):
    """Output update, row k: ``f~(k)`` (exact or first-order); returns GIA's running ``low``."""
    if not k:
        return low
    L, a, P = cx.L, cx.a, cx.P
    if not cx.exact:
        st.f[k] = st.f[k - 1] + a * (st.ntk[k - 1][:, :P] @ st.delta[k - 1])
        return low
    # f~(k) = <z^L(k) h^L(k)> / gamma0 = Xhat^L(k, . ; k)
    st.f[k] = first @ st.bh[L][k, :k] + st.A[L][k, :, :k].sum(-1) * st.V[L][k, : k + 1].sum()
    if cx.gia and L > 1:
        # GIA: <z^L h^L> / gamma0 holds the NTK terms of layers L, L-1 only (the lower ones
        # arrive through the responses A, which GIA drops); add those first-order, so that
        # gamma0 -> 0 gives the lazy dynamics.
        j = k - 1
        k_low = sum(st.G[l + 1][j, j] * st.hdiag[l][j][:, :P] for l in range(L - 1))
        low = low + a * (k_low @ st.delta[j])
        st.f[k] = st.f[k] + low
    return low


def _complete(st: MarchState, cx: _Ctx, k: int, crow: list, kx, y) -> None:
    """Delta(k), then what needs it: Psi(:, :, k), psi(k, :), and the ct, at, ut rows."""
    P, eps = cx.P, cx.eps
    dk = y - st.f[k, :P]
    st.delta[k] = dk
    st.Psi[0][:, :, k] = kx[:, :P] @ dk
    prow = (dk @ kx[:P, :P]) @ st.delta[: k + 1].T
    st.psi[0][k, : k + 1] = prow
    st.psi[0][:k, k] = prow[:k]
    for l in range(1, cx.L + 1):
        st.ct[l][k, :k] = dk @ crow[l][:P]
        atk = dk @ st.A[l][k, :P, :k]
        st.at[l][k, :k] = atk
        utk = dk @ st.U[l][k, :P, :k]
        st.ut[l][k, :k] = utk
        # equal-time entry Psi(k, ., k); the entries Psi(j, ., k), j < k, only feed the
        # assembly and are filled after the march in one batched pass (_fill_upper)
        dk_, ps = st.d[l][:k, :k], st.psi[l - 1]
        s_at = eps * (dk_ @ (ps[:k, :k] @ (atk @ dk_))) + st.G[l + 1][:k, :k] @ atk
        st.Psi[l][k, :, k] = st.Psi[l - 1][k, :, k] + eps * (
            st.U[l][k, :, :k] @ ps[k, :k] + st.Psi[l - 1][k, :, :k] @ utk + st.A[l][k, :, :k] @ s_at)
        prow = dk @ st.Psi[l][k, :P, : k + 1]
        st.psi[l][k, : k + 1] = prow
        st.psi[l][:k, k] = prow[:k]


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
