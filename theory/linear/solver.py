r"""Exact infinite-width theory of deep LINEAR networks (docs/theory.md sections 2 and 4).

Derivation (our conventions, docs/theory.md section 1; ``phi(h) = h`` so ``g^l = z^l``)
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
covariances are docs/theory.md section 4's recursions written through the push-through identities;
``G^1`` uses ``B^0 = Q^{-1} D^1`` with ``H^0 = Kx``.

Exact output update: since ``w(k) = z^L(k)``, ``f~_mu(k) = <z^L(k) h^L(k,mu)> / gamma0`` exactly
(the increment form of docs/theory.md section 2 telescopes to this), and in the linear system

    <h^L g^{L T}> / gamma0 = (Psi^{L-1} + eps U psi^{L-1}) bhat^{L-1 T} + Ahat G^{L+1} V^T   (n x m)

whose equal-time part ``(k, mu; k)`` is ``f~_mu(k)``. Under ``scheme="gia"`` (``A = B = 0``) that average holds only the NTK terms of layers ``L`` and
``L-1``: the lower layers reach the output through the responses. GIA's exact update therefore
adds their terms first-order, ``(eta/P) sum_{s<k} sum_{l<=L-2} G^{l+1}(s,s) H^l(s,s) Delta(s)``:
it equals the full exact update at ``L = 1`` and the lazy dynamics as ``gamma0 -> 0`` (the bare
average was off by 0.23 in the loss at ``gamma0 = 1e-3``, ``L = 3``). ``update="first_order"`` uses instead
``f~(k+1) = f~(k) + (eta/P) K(k)[:, train] Delta(k)``.

Causality: ``C``, ``D``, ``A``, ``B`` are strictly lower triangular in time for a linear network,
so row ``k`` of every kernel follows in ONE sweep from rows ``< k`` and ``Delta(< k)``: the
solver marches in time (``theory.linear.march``, cost ``O(L P_all T^3)``, in practice bound by the
per-operation overhead of ~60 small operations per layer and row), assembles the full ``H^l`` as
rank-(T+1) symmetric updates (``theory.linear.assemble``, ``O(L (P_all T)^2 T)``, the dominant cost for
large P_all: the output itself is ``L (P_all T)^2``), then re-evaluates the whole-trajectory
fixed-point map once as an independent check (``theory.linear.check``): that relative change is
``Solution.residual`` and must be below ``tol``. ``(I - C D)`` is unit triangular in discrete time,
so the blow-up past the critical gamma0 shows as kernels and loss growing without bound (gradient
descent leaving its stability region as the NTK grows): the march stops there and the status is
``DIVERGED`` with ``info["reason"]``; rows after that step are NaN.

Native layout of the responses (scheme "dmft"; ``info["linear_responses"]``; the Solution's
``response_a`` / ``response_b`` hold A^1..A^{L-1}, B^1..B^{L-1} of these in the layout every
solver shares, see :class:`theory.Solution`):
    a[i] = A^{i+1}(k, mu; s) = <dh^{i+1}(k,mu)/dr^{i+1}(s)>, shape (T+1, P_all, T+1), i = 0..L-1
    b[i] = B^{i}(k; s, nu)   = <dg^{i+1}(k)/du^{i+1}(s,nu)>, shape (T+1, T+1, P_all), i = 0..L-1
    (zero on test columns; B^0 enters G^1 only; B^L = 0 is omitted). For "gia" there are none.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import divergence
from .assemble import assemble
from .check import residual as _residual
from .march import intra_op_threads, march
from ..problem import Problem
from ..solution import Solution, Status, build_solution, point_free

#: Default tolerance on the a-posteriori self-consistency residual, by dtype.
DEFAULT_TOL = {torch.float64: 1e-10, torch.float32: 1e-4}
#: The march stops (status DIVERGED) once loss or NTK grow by this factor over their start
#: (the rule every solver shares: ``theory.divergence``).
BLOWUP = divergence.BLOWUP


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


def solve_linear(problem: Problem, *, gia: bool = False, exact_update: bool = True,
                 tol: float | None = None, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu", blowup: float = BLOWUP,
                 threads: int | None = 1) -> Solution:
    """Exact infinite-width solution of a deep linear network (see the module docstring).

    Options arrive validated (``theory.solve`` is the front door). gia: responses A = B = 0;
    exact_update: the exact infinite-width update of gradient descent (else first order);
    tol: bound on the a-posteriori self-consistency residual (None: ``DEFAULT_TOL[dtype]``),
    above it the status is MAX_ITERATIONS; blowup: growth of loss / NTK over their start taken
    as divergence (``theory.divergence``); threads: torch intra-op threads on the CPU (default 1:
    the march is thousands of tiny operations, extra threads mostly add synchronisation, which
    is ruinous on a loaded machine; None leaves torch's setting alone).
    Returns a :class:`theory.Solution` (``g[l]``: broadcast views of the (T+1, T+1) ``G^{l+1}``;
    responses in the common layout, the native ones in ``info["linear_responses"]``).
    """
    tol = DEFAULT_TOL[dtype] if tol is None else float(tol)
    eps = problem.gamma0**2
    out = core(problem, eps, gia=gia, exact_update=exact_update, dtype=dtype, device=device,
               blowup=blowup, threads=threads)
    st, H = out["state"], out["H"]
    L, Pa, P = problem.depth, problem.n_points, problem.n_train
    info: dict[str, Any] = {"update": "exact" if exact_update else "first_order",
                            "sweeps_per_step": 1, "tolerance": tol}
    if st.reason is None:
        kx = problem.kx.to(dtype=dtype, device=device)
        y = problem.y_train.to(dtype=dtype, device=device)
        with intra_op_threads(threads if kx.device.type == "cpu" else None):
            res = _residual(st, H, kx, y, depth=L, eps=eps, a=problem.eta / P, gia=gia,
                            exact_update=exact_update)
        status = Status.CONVERGED if res <= tol else Status.MAX_ITERATIONS
        if status is not Status.CONVERGED:
            info["reason"] = f"self-consistency residual {res:.3g} above tol {tol:.3g}"
    else:
        res, status = math.inf, Status.DIVERGED
        info["reason"], info["diverged_step"] = st.reason, st.steps_done
    ra = rb = None
    if not gia:
        native_a, native_b = native_responses(problem, st, dtype=dtype, device=device)
        info["linear_responses"] = {"a": native_a, "b": native_b}
        ra = tuple((native_a[l - 1] / Pa)[..., None].expand(*native_a[l - 1].shape, Pa)
                   for l in range(1, L))
        rb = tuple(native_b[l][:, None].expand(native_b[l].shape[0], Pa, *native_b[l].shape[1:])
                   for l in range(1, L))
    return build_solution(
        problem, "gia" if gia else "dmft", f=out["f"], ntk=out["ntk"], phi=H[1:],
        g=[point_free(gl, Pa) for gl in st.G[1 : L + 1]], status=status,
        iterations=st.steps_done, residual=res, response_a=ra, response_b=rb, info=info)


def native_responses(problem: Problem, st, *, dtype, device) -> tuple[tuple, tuple]:
    """The linear network's responses in their own layout (module docstring): ``a[i] = A^{i+1}``
    (T+1, P_all, T+1) and ``b[i] = B^i`` (T+1, T+1, P_all), i = 0..L-1, zero on test columns."""
    L, m, Pa, P, g0 = problem.depth, problem.steps + 1, problem.n_points, problem.n_train, problem.gamma0
    dl = torch.zeros(m, Pa, dtype=dtype, device=device)
    dl[:, :P] = st.delta
    a = tuple(g0 * st.A[l] for l in range(1, L + 1))
    b = tuple(g0 * st.bh[l][:, :, None] * dl[None] for l in range(1, L + 1))
    return a, b
