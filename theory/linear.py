r"""Exact infinite-width theory of deep LINEAR networks (THEORY.md sections 2 and 4).

Derivation (our conventions, THEORY.md section 1; ``phi(h) = h`` so ``g^l = z^l``)
-----------------------------------------------------------------------------------
Gradient descent moves ``W^l(k+1) = W^l(k) + (eta gamma0 / (P sqrt(N_l))) sum_mu Delta_mu(k)
g^{l+1}_mu(k) h^l_mu(k)^T`` and ``w(k+1) = w(k) + (eta gamma0/P) sum_mu Delta_mu(k) h^L_mu(k)``.
In a linear network ``z^l`` has no point index, so with ``m = T+1`` times and ``n = m P_all``:

    h^l = u^l + C^l g^l,   g^l = r^l + D^l h^l,
    C^l(k,mu; s) = A^{l-1}(k,mu; s) + (eta gamma0/P) [s<k] sum_{nu<P} H^{l-1}(k,mu; s,nu) Delta_nu(s)
    D^l(k; s,nu) = B^l(k; s,nu)     + (eta gamma0/P) [s<k] G^{l+1}(k,s) Delta_nu(s) [nu<P]

with ``A^l = dh^l/dr^l = M^{-1} C^l = C^l Q^{-1}`` (n x m) and ``B^{l-1} = dg^l/du^l = Q^{-1} D^l``
(m x n), ``M = I - C D``, ``Q = I - D C``, ``A^0 = B^L = 0``. By induction from ``B^L = 0`` every
``D^l`` and ``B^l`` is *separable*: ``D^l(k; s,nu) = gamma0 dhat^l(k,s) Delta_nu(s)``, i.e.
``D = gamma0 dhat pi`` with the projection ``(pi h)(s) = sum_nu Delta_nu(s) h(s,nu)``. Hence
``Q = I - eps dhat ctilde`` (m x m, ``ctilde = pi Chat``), ``M^{-1} = I + eps Ahat dhat pi`` and

    G^l = V G^{l+1} V^T + eps bhat psi^{l-1} bhat^T,      V = Q^{-1},  bhat = V dhat
    H^l = H^{l-1} + eps [U Psi^{l-1 T} + Psi^{l-1} U^T + Ahat (eps dhat psi^{l-1} dhat^T + G^{l+1}) Ahat^T]

where ``eps = gamma0^2``, ``C = gamma0 Chat``, ``A = gamma0 Ahat``, ``U = Ahat dhat``,
``Psi^l = H^l pi^T`` (n x m) and ``psi^l = pi H^l pi^T`` (m x m). Only (T+1)-square matrices are
ever inverted, and every kernel is a smooth function of ``eps`` (no division by gamma0). The
covariances are THEORY.md section 4's recursions written through the push-through identities;
``G^1`` uses ``B^0 = Q^{-1} D^1`` with ``H^0 = Kx``.

Exact output update: since ``w(k) = z^L(k)``, ``f~_mu(k) = <z^L(k) h^L(k,mu)> / gamma0`` exactly
(the increment form of THEORY.md section 2 telescopes to this), and in the linear system

    <h^L g^{L T}> / gamma0 = (Psi^{L-1} + eps U psi^{L-1}) bhat^{L-1 T} + Ahat G^{L+1} V^T   (n x m)

whose equal-time part ``(k, mu; k)`` is ``f~_mu(k)``. Under ``scheme="gia"`` (``A = B = 0``) that average holds only the NTK terms of layers ``L`` and
``L-1``: the lower layers reach the output through the responses. GIA's exact update therefore
adds their terms first-order, ``(eta/P) sum_{s<k} sum_{l<=L-2} G^{l+1}(s,s) H^l(s,s) Delta(s)``:
it equals the full exact update at ``L = 1`` and the lazy dynamics as ``gamma0 -> 0`` (the bare
average was off by 0.23 in the loss at ``gamma0 = 1e-3``, ``L = 3``). ``update="first_order"`` uses instead
``f~(k+1) = f~(k) + (eta/P) K(k)[:, train] Delta(k)``.

Causality: ``C``, ``D``, ``A``, ``B`` are strictly lower triangular in time for a linear network,
so row ``k`` of every kernel follows in ONE sweep from rows ``< k`` and ``Delta(< k)``: the
solver marches in time (``theory.linear_march``, cost ``O(L P_all T^3)``, in practice bound by the
per-operation overhead of ~60 small operations per layer and row), assembles the full ``H^l`` as
rank-(T+1) symmetric updates (:func:`assemble`, ``O(L (P_all T)^2 T)``, the dominant cost for
large P_all: the output itself is ``L (P_all T)^2``), then re-evaluates the whole-trajectory
fixed-point map once as an independent check (``theory.linear_check``): that relative change is
``Solution.residual`` and must be below ``tol``. ``(I - C D)`` is unit triangular in discrete time,
so the blow-up past the critical gamma0 shows as kernels and loss growing without bound (gradient
descent leaving its stability region as the NTK grows): the march stops there and the status is
``DIVERGED`` with ``info["reason"]``; rows after that step are NaN.

Layout of the responses (scheme "dmft"):
    response_a[i] = A^{i+1}(k, mu; s) = <dh^{i+1}(k,mu)/dr^{i+1}(s)>, shape (T+1, P_all, T+1), i = 0..L-1
    response_b[i] = B^{i}(k; s, nu)   = <dg^{i+1}(k)/du^{i+1}(s,nu)>, shape (T+1, T+1, P_all), i = 0..L-1
    (zero on test columns; B^0 enters G^1 only; B^L = 0 is omitted). For "gia" both are None.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD

from . import divergence
from .linear_check import residual as _residual
from .linear_march import intra_op_threads, march
from .problem import Problem
from .solution import Solution, Status

SCHEMES = ("dmft", "gia", "perturbative")
UPDATES = ("exact", "first_order")
#: Default tolerance on the a-posteriori self-consistency residual, by dtype.
DEFAULT_TOL = {torch.float64: 1e-10, torch.float32: 1e-4}
#: The march stops (status DIVERGED) once loss or NTK grow by this factor over their start
#: (the rule every solver shares: ``theory.divergence``).
BLOWUP = divergence.BLOWUP


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    v = getattr(value, "value", value)
    if not isinstance(v, str) or v.lower() not in allowed:
        raise ValueError(f"{name}: unknown value {value!r}; valid values are {list(allowed)}")
    return v.lower()


def core(
    problem: Problem, eps, *, gia: bool, exact_update: bool, dtype, device, blowup=BLOWUP, threads: int | None = 1
) -> dict:
    """Run the march and assemble every output for ``eps = gamma0**2`` (float or dual tensor).

    ``threads``: torch intra-op threads on the CPU during the work (None: leave torch's setting).

    Returns a dict: ``state`` (the MarchState), ``H`` (list, H[l] (m, Pa, m, Pa) for l = 1..L,
    H[0] None), ``loss`` (m,), ``f`` (m, Pa), ``ntk`` (m, Pa, Pa), ``G`` (list of (m, m), index l).
    """
    kx = problem.kx.to(dtype=dtype, device=device)
    y = problem.y_train.to(dtype=dtype, device=device)
    L, P = problem.depth, problem.n_train
    with intra_op_threads(threads if kx.device.type == "cpu" else None):
        st = march(
            kx, y, depth=L, eps=eps, a=problem.eta / P, steps=problem.steps,
            gia=gia, exact_update=exact_update, blowup=blowup,
        )
        H = [None] + assemble(st, kx, eps, depth=L)
    loss = (st.delta**2).mean(-1)
    return dict(state=st, H=H, loss=loss, f=st.f, ntk=st.ntk, G=st.G)


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
    With a forward-mode dual ``eps`` (``theory.perturbative``) the small factors ``S``, ``R`` go
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


def _nan_after(t: torch.Tensor, k: int, dims: tuple[int, ...]) -> torch.Tensor:
    """Copy of ``t`` with NaN at every time index >= k along ``dims`` (rows past divergence)."""
    t = t.clone()
    for d in dims:
        idx = [slice(None)] * t.ndim
        idx[d] = slice(k, None)
        t[tuple(idx)] = math.nan
    return t


def solve_linear(
    problem: Problem,
    *,
    scheme: str = "dmft",
    update: str = "exact",
    tol: float | None = None,
    max_iterations: int = 1,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    blowup: float = BLOWUP,
    threads: int | None = 1,
) -> Solution:
    """Exact infinite-width solution of a deep linear network (see the module docstring).

    scheme: "dmft" (full theory), "gia" (responses A = B = 0) or "perturbative"
        (``q(0) + gamma0^2 q_2``, see :func:`theory.perturbative.solve_perturbative`).
    update: "exact" (infinite-width gradient descent with step eta, default) or "first_order".
    tol: bound on the a-posteriori self-consistency residual (default 1e-10 in float64);
        above it the status is MAX_ITERATIONS.
    max_iterations: sweeps per time step; one is exact because every coupling is strictly causal
        (kept >= 1 for a uniform solver interface).
    blowup: growth factor of loss / NTK over their initial values taken as divergence.
    threads: torch intra-op threads used on the CPU (default 1: the march is thousands of tiny
        operations and the GEMMs are modest, so extra threads mostly add synchronisation, which is
        ruinous on a loaded machine); None leaves torch's setting alone.
    Returns a :class:`theory.Solution`; ``g[l]`` are broadcast views of the (T+1, T+1) ``G^{l+1}``.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected theory.Problem, got {type(problem).__name__}")
    if not problem.activation.is_linear:
        raise ValueError(f"problem.activation: solve_linear needs 'linear', got {problem.activation.name!r}")
    scheme = _choice("scheme", scheme, SCHEMES)
    update = _choice("update", update, UPDATES)
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise ValueError(f"max_iterations: must be an integer >= 1, got {max_iterations!r}")
    if dtype not in DEFAULT_TOL:
        raise ValueError(f"dtype: must be one of {list(DEFAULT_TOL)}, got {dtype!r}")
    tol = DEFAULT_TOL[dtype] if tol is None else float(tol)
    if not tol > 0:
        raise ValueError(f"tol: must be > 0, got {tol!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads: must be None or an integer >= 1, got {threads!r}")
    if not blowup > 1:
        raise ValueError(f"blowup: must be > 1, got {blowup!r}")
    if scheme == "perturbative":
        from .perturbative import solve_perturbative

        return solve_perturbative(problem, update=update, dtype=dtype, device=device)

    gia = scheme == "gia"
    exact = update == "exact"
    eps = problem.gamma0**2
    out = core(problem, eps, gia=gia, exact_update=exact, dtype=dtype, device=device, blowup=blowup, threads=threads)
    st, H = out["state"], out["H"]
    L, m, Pa, P = problem.depth, problem.steps + 1, problem.n_points, problem.n_train
    info: dict[str, Any] = {"update": update, "sweeps_per_step": 1, "tolerance": tol}
    kx = problem.kx.to(dtype=dtype, device=device)
    y = problem.y_train.to(dtype=dtype, device=device)
    g0 = problem.gamma0
    f, loss, ntk = out["f"], out["loss"], out["ntk"]
    Hs, Gs = H[1:], st.G[1 : L + 1]
    if st.reason is None:
        with intra_op_threads(threads if kx.device.type == "cpu" else None):
            res = _residual(st, H, kx, y, depth=L, eps=eps, a=problem.eta / P, gia=gia, exact_update=exact)
        status = Status.CONVERGED if res <= tol else Status.MAX_ITERATIONS
        if status is not Status.CONVERGED:
            info["reason"] = f"self-consistency residual {res:.3g} above tol {tol:.3g}"
    else:
        k = st.steps_done
        res = math.inf
        status = Status.DIVERGED
        info["reason"] = st.reason
        info["diverged_step"] = k
        f, loss, ntk = _nan_after(f, k, (0,)), _nan_after(loss, k, (0,)), _nan_after(ntk, k, (0,))
        Hs = [_nan_after(h, k, (0, 2)) for h in Hs]
        Gs = [_nan_after(gl, k, (0, 1)) for gl in Gs]
    ra = rb = None
    if scheme == "dmft":
        ra = tuple(g0 * st.A[l] for l in range(1, L + 1))
        dl = torch.zeros(m, Pa, dtype=dtype, device=device)
        dl[:, :P] = st.delta
        rb = tuple(g0 * st.bh[l][:, :, None] * dl[None] for l in range(1, L + 1))
    return Solution(
        problem=problem,
        scheme=scheme,
        t=problem.times.to(dtype=dtype, device=device),
        loss=loss,
        f_train=f[:, :P],
        f_test=f[:, P:] if problem.n_test else None,
        ntk=ntk,
        phi=tuple(Hs),
        g=tuple(gl[:, None, :, None].expand(m, Pa, m, Pa) for gl in Gs),
        status=status,
        iterations=st.steps_done,
        residual=res,
        response_a=ra,
        response_b=rb,
        info=info,
    )
