"""Leading-order perturbation theory through the Monte Carlo sampler (docs/theory.md section 5).

Every order parameter is even in gamma0, ``q(gamma0) = q(0) + gamma0^2 q_2 + O(gamma0^4)``, and
``q(0)`` is the lazy solution (exact, docs/theory.md section 3). The coefficient is the symmetric
second difference with COMMON RANDOM NUMBERS (both runs use the same seed, so the same
standard-normal draws feed both self-consistent solutions)::

    q_2 ~= (q(+h) + q(-h) - 2 q(0)) / (2 h^2)            error O(h^2 q_4)

The alternating Monte Carlo solver accepts a negative gamma0 (the couplings change sign; the
output divides by gamma0). With the linearized control variate the estimates carry noise of
the size of their (O(h^2)) non-Gaussian part, so the division by ``h^2`` does not amplify the
sampling noise; for linear networks the control variate is exact and ``q_2`` is exact up to the
``O(h^2)`` truncation. The solution holds ``q(0) + gamma0^2 q_2`` (loss expanded itself) and
``info["second_order"]`` the ``q_2``, like :func:`theory.linear.perturbative.solve_perturbative`.
"""

from __future__ import annotations

from ..lazy import lazy_dynamics, lazy_kernels
from ..problem import Problem
from ..solution import Solution, Status, build_solution
from .loop import LoopOptions, run_iterations

#: Default finite-difference step in gamma0.
STEP = 0.1


def solve_perturbative_mc(problem: Problem, *, options: LoopOptions, step: float = STEP) -> Solution:
    """``q(0) + gamma0^2 q_2`` with ``q_2`` from the symmetric difference above; both runs
    iterate whole trajectories (common random numbers need the same path through the solver).
    Options arrive validated (``theory.solve``)."""
    t1, pa, p = problem.steps + 1, problem.n_points, problem.n_train
    kw = dict(dtype=options.dtype, device=options.device)
    y = problem.y_train.to(**kw)
    lk = lazy_kernels(problem.kx.to(**kw), problem.depth, problem.activation)
    _, f0 = lazy_dynamics(lk.ntk, y, problem.eta, problem.steps)
    q0 = {"phi": [m.repeat(t1, t1) for m in lk.phi], "g": [m.repeat(t1, t1) for m in lk.g],
          "f": f0, "ntk": lk.ntk[None].expand(t1, pa, pa)}
    plus, minus = (run_iterations(problem, gamma0=g0, scheme="dmft", options=options)
                   for g0 in (float(step), -float(step)))
    h2 = 2.0 * float(step) ** 2

    def coef(a, b, c):
        return (a + b - 2.0 * c) / h2

    q2 = {"phi": [coef(a, b, c) for a, b, c in zip(plus.phi, minus.phi, q0["phi"])],
          "g": [coef(a, b, c) for a, b, c in zip(plus.g, minus.g, q0["g"])],
          "f": coef(plus.f, minus.f, q0["f"]), "ntk": coef(plus.ntk, minus.ntk, q0["ntk"])}
    loss = lambda f: ((f[:, :p] - y) ** 2).mean(-1)  # noqa: E731
    loss0 = loss(f0)
    loss2 = coef(loss(plus.f), loss(minus.f), loss0)
    e = problem.gamma0**2
    to4 = lambda m: m.reshape(t1, pa, t1, pa)  # noqa: E731
    bad = [(name, c) for name, c in (("+h", plus), ("-h", minus)) if not c.status.ok]
    f2 = q2["f"]
    info = {
        "step": float(step),
        "runs": {"plus": plus.info, "minus": minus.info},
        "second_order": {
            "loss": loss2, "f_train": f2[:, :p], "f_test": f2[:, p:] if problem.n_test else None,
            "ntk": q2["ntk"], "phi": tuple(to4(m) for m in q2["phi"]),
            "g": tuple(to4(m) for m in q2["g"]),
        },
    }
    if bad:
        info["reason"] = "; ".join(f"the run at gamma0 = {name} ended {c.status.value}: "
                                   f"{c.info.get('reason')}" for name, c in bad)
    else:  # the bound each run met, on the scale of q_2 (like the residual below)
        info["tolerance"] = max(plus.info["tolerance"], minus.info["tolerance"]) / h2
    return build_solution(
        problem, "perturbative", f=q0["f"] + e * q2["f"], ntk=q0["ntk"] + e * q2["ntk"],
        phi=[a + e * b for a, b in zip(q0["phi"], q2["phi"])],
        g=[a + e * b for a, b in zip(q0["g"], q2["g"])], loss=loss0 + e * loss2,
        status=bad[0][1].status if bad else Status.CONVERGED,
        iterations=max(plus.iterations, minus.iterations),
        residual=max(plus.residual, minus.residual) / h2, info=info)
