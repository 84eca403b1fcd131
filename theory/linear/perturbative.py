"""Leading-order perturbation theory in gamma0 for deep linear networks (docs/theory.md section 5).

Every order parameter of the exact linear solver is a smooth function of ``eps = gamma0**2``
(``theory.linear`` is written in rescaled variables that never divide by gamma0), and odd orders
in gamma0 vanish. The exact second-order Taylor coefficient is therefore

    q_2 = (1/2) d^2 q / d gamma0^2 |_0 = d q / d eps |_{eps = 0},

computed here by ONE forward-mode automatic differentiation (``torch.autograd.forward_ad``)
of the exact march at ``eps = 0`` with tangent 1. The solution holds the truncated expansion
``q(0) + gamma0^2 q_2`` for the loss, outputs, NTK, ``H^l`` and ``G^l`` (the loss is expanded
itself, not recomputed from the truncated outputs), and ``info["second_order"]`` the ``q_2``.

Closed form (derived from the O(eps) terms of the linear equations, which involve only lazy
quantities; used by the tests as an independent cross-check). With the lazy error ``Delta0``,
``v(t) = int_0^t Delta0`` and ``V_ab(t) = int_0^t ds Delta0_a(s) v_b(s)`` (gradient flow; in
discrete time ``v_k = eta sum_{j<k} Delta0(j)``, ``V_k = eta sum_{i<k} Delta0(i) v_i^T``, and the
formulas below hold exactly for either output update):

    H^l_2(t, s) = sum_{j=1..l} Kx [j^2 v(t) v(s)^T + j (L-j+1) (V(t) + V(s)^T)] Kx^T / P^2
    G^l_2(t, s) = sum_{j=l..L} [(L-j+1) j (<Kx, V(t)> + <Kx, V(s)>) + (L-j+1)^2 v(t)^T Kx v(s)] / P^2

(``Kx`` here is the (P_all, P) block against training points). In gradient flow ``V + V^T = v v^T``,
so at equal times ``H^l_2 = (L+1) l (l+1) Kx v v^T Kx^T / (2 P^2)`` and
``G^l_2 = (L+1) (L-l+1) (L-l+2) v^T Kx v / (2 P^2)``; ``V_ab`` (the paper's ``v_ab``, sign as
defined here) shows up in the two-time kernels.
"""

from __future__ import annotations

import warnings

import torch
import torch.autograd.forward_ad as fwAD

from ..problem import Problem
from ..solution import Solution, Status, build_solution, point_free
from .solver import core


def _split(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    primal, tangent = fwAD.unpack_dual(t)
    primal = primal.detach().clone()
    tangent = torch.zeros_like(primal) if tangent is None else tangent.detach().clone()
    return primal, tangent


def dual_zero(dtype, device) -> torch.Tensor:
    """``eps = 0`` with tangent 1, a forward-mode dual number (call inside ``fwAD.dual_level``).

    torch loads its forward-AD decompositions on the first ``make_dual`` of a process and scripts
    them with ``torch.jit.script``, which emits a deprecation FutureWarning; nothing here uses
    TorchScript, so exactly that warning is silenced, here, where it is raised.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                                category=FutureWarning)
        z = torch.zeros((), dtype=dtype, device=device)
        return fwAD.make_dual(z, torch.ones_like(z))


def second_order(problem: Problem, *, update: str = "exact", dtype=torch.float64, device="cpu") -> dict:
    """``{name: (q0, q2)}`` for loss (m,), f (m, Pa), ntk (m, Pa, Pa), H (list of (m,Pa,m,Pa)), G (list of (m,m)).

    ``H``/``G`` lists run over layers 1..L. ``q0`` is the lazy value, ``q2 = dq/d(gamma0^2)`` at 0.
    """
    L = problem.depth
    with fwAD.dual_level():
        eps = dual_zero(dtype, device)
        out = core(
            problem, eps, gia=False, exact_update=(update == "exact"),
            dtype=dtype, device=device, blowup=float("inf"),
        )
        res = {k: _split(out[k]) for k in ("loss", "f", "ntk")}
        res["H"] = [_split(out["H"][l]) for l in range(1, L + 1)]
        res["G"] = [_split(out["G"][l]) for l in range(1, L + 1)]
    return res


def solve_perturbative(problem: Problem, *, exact_update: bool = True, dtype=torch.float64,
                       device="cpu") -> Solution:
    """``q(0) + gamma0^2 q_2`` for every order parameter (see the module docstring)."""
    update = "exact" if exact_update else "first_order"
    so = second_order(problem, update=update, dtype=dtype, device=device)
    e = problem.gamma0**2
    P, Pa = problem.n_train, problem.n_points
    tr = lambda pair: pair[0] + e * pair[1]  # noqa: E731
    f2 = so["f"][1]
    info = {
        "update": update,
        "second_order": {
            "loss": so["loss"][1],
            "f_train": f2[:, :P],
            "f_test": f2[:, P:] if problem.n_test else None,
            "ntk": so["ntk"][1],
            "phi": tuple(p[1] for p in so["H"]),
            "g": tuple(p[1] for p in so["G"]),
        },
    }
    return build_solution(problem, "perturbative", f=tr(so["f"]), ntk=tr(so["ntk"]),
                          phi=[tr(p) for p in so["H"]], g=[point_free(tr(p), Pa) for p in so["G"]],
                          status=Status.EXACT, loss=tr(so["loss"]), info=info)
