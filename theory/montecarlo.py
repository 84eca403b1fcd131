"""Alternating Monte Carlo solver of the nonlinear DMFT (THEORY.md sections 2 and 5).

Loop (section 2, "The alternating Monte Carlo solver"):
1. start from the lazy kernels (constant in time), ``A = B = 0``, ``Delta`` from the lazy NTK;
2. per layer: factor the source covariances once (eigh with clipping), draw ``S`` samples, step
   the fields forward in time for all samples at once, estimate ``Phi``, ``G`` with the lazy
   control variates, and the responses by exact pathwise Jacobians of a subset of samples;
3. march the outputs in time (``theory.mc_outputs``);
4. mix with damping ``beta``; stop when the change is at the Monte Carlo noise floor, then
   average a few more iterations (running mean) to lower the noise.

Responses are returned as ``response_a[l-1] = A^l`` and ``response_b[l-1] = B^l`` for
``l = 1 .. L-1``, each of shape ``(T+1, P_all, T+1, P_all)`` indexed ``[k, mu, s, nu]`` =
``d phi(h^l(k,mu)) / d r^l(s,nu)`` (strictly causal, ``s < k``) and
``d g^{l+1}(k,mu) / d u^{l+1}(s,nu)`` (``s <= k``).
"""

from __future__ import annotations

import math
import time

import torch

from .lazy import lazy_dynamics, lazy_kernels
from .mc_control import Linearization, estimate_kernels
from .mc_errors import IterateSpread, observables, standard_errors
from .mc_fields import coupling, solve_fields, tangent_fields
from .mc_jacobians import split_half_jacobians
from .mc_outputs import first_order_output, march, ntk_over_time, sample_output
from .mc_sampling import constant_in_time_factor, draw, ones_factor, psd_project, symmetric_sqrt
from .problem import Problem
from .solution import Solution, Status

SCHEMES = ("dmft", "gia", "perturbative")
UPDATES = ("exact", "first_order")
CONTROL_VARIATES = ("auto", "linearized", "lazy", "none")
#: Smallest relative change the default stopping rule waits for (when the noise is ~0, e.g.
#: linear networks, whose linearized control variate is exact).
TOL_FLOOR = 1e-6
#: Sample schedule: the first iterations use these fractions of ``samples`` and
#: ``response_samples`` (cheap early iterations far from the fixed point); convergence is only
#: declared at full samples.
WARMUP = (0.25, 0.5)
#: Full-sample iterations refresh the response Jacobians every this many iterations (and always
#: on the first one, after a likely-converged iteration, and before convergence is declared).
RESPONSE_EVERY = 2
#: Kernels larger than this multiple of the lazy ones count as diverged.
BLOWUP = 1e6


def _check_choice(name, value, allowed):
    v = str(value).lower() if not hasattr(value, "value") else str(value.value)
    if v not in allowed:
        raise ValueError(f"{name}: unknown value {value!r}; valid values are {list(allowed)}")
    return v


def _check_int(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name}: must be an integer >= {lo}, got {value!r}")
    return value


def solve_mc(
    problem: Problem,
    *,
    scheme: str = "dmft",
    update: str = "exact",
    samples: int = 4000,
    response_samples: int = 64,
    damping: float = 1.0,
    tol: float | None = None,
    max_iterations: int = 30,
    average_iterations: int = 2,
    control_variate: str = "auto",
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    progress: bool = False,
    gauss_seidel: bool = True,
    warmup: tuple[float, ...] = WARMUP,
    perturbative_step: float = 0.1,
    response_every: int = RESPONSE_EVERY,
    response_average: bool = True,
) -> Solution:
    """Self-consistent DMFT of ``problem`` by alternating Monte Carlo (THEORY.md section 2).

    scheme: "dmft" (with responses), "gia" (``A = B = 0``), "perturbative" (``q(0) + gamma0^2 q_2``
        with ``q_2`` from common random numbers, see :func:`theory.mc_perturbative.solve_perturbative`).
    update: "exact" (discrete-time gradient descent, default) or "first_order" (gradient flow).
    samples: Monte Carlo samples per layer and iteration (kernels); response_samples: samples
        whose exact pathwise Jacobians give the responses (``<= samples``).
    damping: mixing weight ``beta`` of the new estimate, in (0, 1].
    tol: relative change at which to stop; None stops at the Monte Carlo noise floor.
    average_iterations: extra iterations averaged (running mean) after convergence.
    control_variate: "linearized" (fields linearised in the sources with the previous
        iteration's mean Jacobians; exact for linear networks), "lazy" (the gamma0 = 0 fields),
        "none"; "auto" is "linearized". See ``theory.mc_control``.
    perturbative_step: the step ``h`` in gamma0 of the symmetric difference of
        ``scheme="perturbative"`` (``theory.mc_perturbative``).
    warmup: fractions of ``samples`` / ``response_samples`` used by the first iterations
        (a growing sample schedule); ``()`` uses full samples throughout.
    response_every: after the warm-up and the first full-sample iteration, the response
        Jacobians (and the linearized control variate) are re-estimated every
        ``response_every`` iterations and reused in between (1: every iteration). They are
        always re-estimated on the iteration after one whose residual was within twice the
        stopping floor, and convergence is only declared on an iteration that re-estimated
        them AND found them unchanged within their own noise (split-half standard error).
    response_average: after the warm-up, consecutive response refreshes that agree with the
        stored responses within their noise are averaged (running mean, reset by any refresh
        that disagrees), so the response noise keeps falling near the fixed point instead of
        staying at the ``response_samples`` level; False replaces them at every refresh.
    Returns a :class:`theory.Solution`; ``info`` holds ``standard_error`` (relative Frobenius
    errors of "loss", "f_train", "f_test", "ntk" and per layer "phi", "g":
    ``theory.mc_errors``), ``response_refreshes``, the ``history``, samples and timings.
    """
    scheme = _check_choice("scheme", scheme, SCHEMES)
    update = _check_choice("update", update, UPDATES)
    control_variate = _check_choice("control_variate", control_variate, CONTROL_VARIATES)
    _check_int("samples", samples, 4)
    _check_int("response_samples", response_samples, 1)
    _check_int("max_iterations", max_iterations, 1)
    _check_int("average_iterations", average_iterations, 0)
    _check_int("response_every", response_every, 1)
    if not (isinstance(damping, (int, float)) and 0.0 < float(damping) <= 1.0):
        raise ValueError(f"damping: must be a number in (0, 1], got {damping!r}")
    if not (isinstance(warmup, (tuple, list)) and all(
            isinstance(w, (int, float)) and 0.0 < w <= 1.0 for w in warmup)):
        raise ValueError(f"warmup: must be a tuple of fractions in (0, 1], got {warmup!r}")
    if tol is not None and not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol: must be None or a positive number, got {tol!r}")
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected theory.Problem, got {type(problem).__name__}")
    if problem.gamma0 <= 0:
        raise ValueError("gamma0: the Monte Carlo solver needs gamma0 > 0 (use solve() for the lazy limit)")
    if control_variate == "auto":
        control_variate = "linearized"
    if not (isinstance(perturbative_step, (int, float)) and perturbative_step > 0):
        raise ValueError(f"perturbative_step: must be a positive number, got {perturbative_step!r}")
    common = dict(update=update, samples=samples, response_samples=min(response_samples, samples),
                  damping=float(damping), tol=tol, max_iterations=max_iterations,
                  average_iterations=average_iterations, control_variate=control_variate,
                  seed=seed, device=device, dtype=dtype, progress=progress,
                  gauss_seidel=gauss_seidel, warmup=tuple(float(w) for w in warmup),
                  response_every=response_every, response_average=bool(response_average))
    if scheme == "perturbative":
        from .mc_perturbative import solve_perturbative_mc

        run = lambda g0: run_iterations(problem, gamma0=g0, scheme="dmft", **common)  # noqa: E731
        return solve_perturbative_mc(problem, run, step=float(perturbative_step), dtype=dtype,
                                     device=device)
    core = run_iterations(problem, gamma0=problem.gamma0, scheme=scheme, **common)
    return assemble(problem, scheme, core)


def assemble(problem: Problem, scheme: str, core: dict) -> Solution:
    """Build the :class:`Solution` from the state returned by :func:`run_iterations`."""
    t1, pa, p = problem.steps + 1, problem.n_points, problem.n_train
    to4 = lambda m: m.reshape(t1, pa, t1, pa)  # noqa: E731
    f = core["f"]
    y = problem.y_train.to(f)
    resp_a = resp_b = None
    if scheme == "dmft":
        resp_a = tuple(to4(a) for a in core["A"])
        resp_b = tuple(to4(b) for b in core["B"])
    return Solution(
        problem=problem, scheme=scheme, t=problem.times.to(f), loss=((f[:, :p] - y) ** 2).mean(-1),
        f_train=f[:, :p], f_test=f[:, p:] if problem.n_test else None, ntk=core["ntk"],
        phi=tuple(to4(m) for m in core["phi"]), g=tuple(to4(m) for m in core["g"]),
        status=core["status"], iterations=core["iterations"], residual=core["residual"],
        response_a=resp_a, response_b=resp_b, info=core["info"],
    )


def run_iterations(problem: Problem, *, gamma0: float, scheme: str, update: str, samples: int,
                   response_samples: int, damping: float, tol, max_iterations: int,
                   average_iterations: int, control_variate: str, seed: int, device, dtype,
                   progress: bool, gauss_seidel: bool = True, warmup: tuple = (),
                   response_every: int = 1, response_average: bool = False) -> dict:
    """The fixed-point loop. ``gamma0`` may differ from ``problem.gamma0`` (perturbative scheme:
    it may even be negative). Returns a dict of (n, n) kernels, outputs and the report."""
    t_start = time.perf_counter()
    act = problem.activation
    depth, eta = problem.depth, problem.eta
    t1, pa, p = problem.steps + 1, problem.n_points, problem.n_train
    n = t1 * pa
    kw = dict(dtype=dtype, device=device)
    kx = problem.kx.to(**kw)
    y = problem.y_train.to(**kw)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    use_resp = scheme == "dmft"
    want_jac = use_resp or control_variate == "linearized"
    lins = [None] * depth
    remainder = 0.0

    lk = lazy_kernels(kx, depth, act)
    rep = lambda m: m.repeat(t1, t1)  # noqa: E731
    phis = [rep(m) for m in lk.phi]
    gs = [rep(m) for m in lk.g]
    a_resp = [torch.zeros(n, n, **kw) for _ in range(depth - 1)]
    b_resp = [torch.zeros(n, n, **kw) for _ in range(depth - 1)]
    delta, f_lazy = lazy_dynamics(lk.ntk, y, eta, problem.steps)
    f_ref, delta_ref, delta_now = f_lazy.clone(), delta.clone(), delta.clone()
    kx_full = rep(kx)
    ones_nn = torch.ones(n, n, **kw)
    f_x = constant_in_time_factor(kx, t1)
    f_one = ones_factor(n, dtype, device)
    norms0 = [float(torch.linalg.matrix_norm(m)) for m in phis + gs]
    scale = eta * gamma0 / p

    status, residual, it, n_avg = Status.MAX_ITERATIONS, math.inf, 0, 0
    history, se_rel = [], [0.0] * (2 * depth)
    timing = {"sampling": 0.0, "fields": 0.0, "kernels": 0.0, "responses": 0.0, "control": 0.0}
    averaging = False
    jac_used = want_jac and (depth > 1 or control_variate == "linearized")
    last_refresh, force_refresh, n_refresh = 0, False, 0
    resp_se = [math.inf] * (2 * (depth - 1))  # absolute split-half se of the stored A^l, B^l
    resp_streak = 0  # consecutive agreeing refreshes in the responses' running mean
    spread = IterateSpread()
    for it in range(1, max_iterations + average_iterations + 1):
        frac = warmup[it - 1] if it <= len(warmup) else 1.0
        # averaging iterations refresh on the schedule only (convergence was checked fresh)
        refresh = jac_used and (it <= len(warmup) + 1 or (force_refresh and not averaging)
                                or it - last_refresh >= response_every)
        if refresh:
            last_refresh, n_refresh = it, n_refresh + 1
        resp_change, resp_noise, new_se = [], [], {}
        s_it = max(4, int(round(frac * samples)))
        sr = max(1, int(round(frac * response_samples)))
        delta_vec = torch.zeros(t1, pa, **kw)
        delta_vec[:, :p] = delta_now
        delta_vec = delta_vec.reshape(n)
        new_phi, new_g, new_a, new_b, ses = [], [], [None] * (depth - 1), [None] * (depth - 1), []
        a_out = None
        for l in range(1, depth + 1):
            tic = time.perf_counter()
            # Gauss-Seidel upward: layer l sees this sweep's Phi^{l-1} and A^{l-1}
            gs_up = gauss_seidel and l >= 2
            phi_below = new_phi[l - 2] if gs_up else (phis[l - 2] if l >= 2 else None)
            a_below = (new_a[l - 2] if gs_up else a_resp[l - 2]) if (l >= 2 and use_resp) else None
            fu = f_x if l == 1 else symmetric_sqrt(phi_below)
            fr = f_one if l == depth else symmetric_sqrt(gs[l])
            u, _ = draw(fu, s_it, gen)
            r, _ = draw(fr, s_it, gen)
            cov_u_k = kx_full if l == 1 else phi_below
            cov_r_k = ones_nn if l == depth else gs[l]
            c = coupling(a_below, cov_u_k, delta_vec, scale, pa)
            d = coupling(b_resp[l - 1] if (l <= depth - 1 and use_resp) else None, cov_r_k, delta_vec, scale, pa)
            timing["sampling"] += time.perf_counter() - tic
            tic = time.perf_counter()
            h, z, g, ph = solve_fields(u, r, c, d, act, pa)
            timing["fields"] += time.perf_counter() - tic
            tic = time.perf_counter()
            est = estimate_kernels(act, u, r, ph, g, fu @ fu.T, fr @ fr.T, lins[l - 1],
                                   control_variate)
            k_phi, k_g, se_p, se_g = est.phi, est.g, est.se_phi, est.se_g
            remainder = max(remainder, est.remainder)
            new_phi.append(k_phi)
            new_g.append(k_g)
            ses += [se_p, se_g]
            timing["kernels"] += time.perf_counter() - tic
            tic = time.perf_counter()
            if refresh:
                ja, jb, jx, se_ja, se_jb = split_half_jacobians(
                    h[:sr], z[:sr], c, d, act, pa, u=u[:sr], r=r[:sr],
                    a_cv=None if est.a_y is None else est.a_y[:sr], e_aa=est.e_dphi)
                # check against the stored estimate: change vs the noise of both estimates
                for k, new, se_new, ok in ((l - 1, ja, se_ja, l <= depth - 1),
                                           (depth - 1 + l - 2, jb, se_jb, l >= 2)):
                    if use_resp and ok:
                        old = a_resp[k] if k < depth - 1 else b_resp[k - depth + 1]
                        size = max(float(torch.linalg.matrix_norm(new)), 1e-300)
                        resp_change.append(float(torch.linalg.matrix_norm(new - old)) / size)
                        resp_noise.append(math.hypot(se_new, resp_se[k]) / size)
                        new_se[k] = se_new
                if use_resp and l <= depth - 1:
                    new_a[l - 1] = ja
                if use_resp and l >= 2:
                    new_b[l - 2] = jb
                if control_variate == "linearized":
                    lins[l - 1] = Linearization.from_responses(c, d, ja, jb, jx)
            elif use_resp:  # reuse the last estimate
                if l <= depth - 1:
                    new_a[l - 1] = a_resp[l - 1]
                if l >= 2:
                    new_b[l - 2] = b_resp[l - 2]
            if l == depth:  # one-direction tangent along the scalar r^L, all samples
                av = act.dphi(h)
                bv = act.ddphi(h) * z
                _, dphi_r = tangent_fields(None, torch.ones_like(h), av, bv, c, d, pa)
                if est.a_y is not None:
                    # first-order tangent a_y o (C a_y), a_y = phi'(Jhu u): mean exactly
                    # sum_s C(k,s) E[a_y(k) a_y(s)] (theory.mc_control)
                    au = est.a_y
                    dphi_r = dphi_r - au * (au @ c.T) + (c * est.e_dphi).sum(1)[None, :]
                half = s_it // 2
                a_out = dphi_r.mean(0).reshape(t1, pa)
                se_out = float((dphi_r[:half].mean(0) - dphi_r[half:].mean(0)).norm()) / 2.0
            timing["responses"] += time.perf_counter() - tic
        f_new = sample_output(a_out, new_phi[-1], delta_now, gamma0, eta, t1, pa, p)
        if scheme == "gia" and depth > 1:  # lower layers first-order (see theory.linear)
            low = ntk_over_time(new_phi, new_g, kx, t1, pa, top=depth - 2)
            f_new = f_new + first_order_output(low, delta_now, eta)

        bad = not all(torch.isfinite(m).all() for m in new_phi + new_g + [f_new])
        sizes = [float(torch.linalg.matrix_norm(m)) for m in new_phi + new_g]
        if bad or any(s > BLOWUP * max(s0, 1e-300) for s, s0 in zip(sizes, norms0)):
            status = Status.DIVERGED
            break
        # residual: relative change of the kernels and outputs against the current state
        olds = phis + gs
        rels = [float(torch.linalg.matrix_norm(nw - od)) / max(float(torch.linalg.matrix_norm(od)), 1e-300)
                for nw, od in zip(new_phi + new_g, olds)]
        f_scale = max(float(f_ref.norm()), float(y.norm()), 1e-300)
        rels.append(float((f_new - f_ref).norm()) / f_scale)
        # ses is per layer [se_phi, se_g, ...]; sizes is [Phi^1..Phi^L, G^1..G^L]
        sizes_by_layer = [sz for pair in zip(sizes[:depth], sizes[depth:]) for sz in pair]
        se_rel = [s / max(sz, 1e-300) for s, sz in zip(ses, sizes_by_layer)]
        residual = max(rels)
        noise = max(se_rel + [se_out / (abs(gamma0) * f_scale)])
        resp_ok = all(ch <= max(3.0 * nz, TOL_FLOOR) for ch, nz in zip(resp_change, resp_noise))
        # responses: a running mean over consecutive refreshes that agree with the stored estimate
        # within their noise (the fixed point's responses, re-estimated from fresh samples), so
        # their noise falls like 1/sqrt(refreshes) instead of staying at the response-sample level
        beta_resp = None
        if refresh and use_resp:
            averaging_resp = response_average and it > len(warmup) + 1 and bool(resp_change) and resp_ok
            resp_streak = resp_streak + 1 if averaging_resp else 0
            beta_resp = 1.0 / (resp_streak + 1)
            for k, se_new in new_se.items():
                resp_se[k] = se_new * math.sqrt(beta_resp) if resp_streak else se_new
        history.append({"iteration": it, "residual": residual, "noise": noise,
                        "changes": rels, "standard_errors": se_rel + [se_out / (abs(gamma0) * f_scale)],
                        "responses_refreshed": refresh, "response_changes": resp_change,
                        "response_noise": resp_noise})
        if progress:
            print(f"[solve_mc] it {it}: residual {residual:.3e} noise {noise:.3e}"
                  f"{' responses ' + str([round(v, 3) for v in resp_change]) if refresh else ''}"
                  f"{' (averaging)' if averaging else ''}; changes (Phi^l, G^l, f) "
                  f"{[round(v, 4) for v in rels]}")
        if averaging:
            n_avg += 1
            beta = 1.0 / (n_avg + 1)
        else:
            beta = damping
        mix = lambda old, new, b=beta: old + b * (new - old)  # noqa: E731
        phis = [mix(o, nw) for o, nw in zip(phis, new_phi)]
        gs = [mix(o, nw) for o, nw in zip(gs, new_g)]
        if use_resp:
            if beta_resp is not None:  # refreshed this iteration (otherwise new == stored)
                a_resp = [mix(o, nw, beta_resp) for o, nw in zip(a_resp, new_a)]
                b_resp = [mix(o, nw, beta_resp) for o, nw in zip(b_resp, new_b)]
        f_ref = mix(f_ref, f_new)
        delta_ref = mix(delta_ref, delta_now)
        ntk = ntk_over_time(phis, gs, kx, t1, pa)
        if update == "first_order":
            delta_now, f_out = march(y, ntk, eta)
        else:
            delta_now, f_out = march(y, ntk, eta, f_ref=f_ref, delta_ref=delta_ref)
        if averaging:
            spread.add(observables(new_phi, new_g, f_new, ntk_over_time(new_phi, new_g, kx, t1, pa), y, p))
            if n_avg >= average_iterations:
                break
            continue
        floor = max(3.0 * noise, TOL_FLOOR) if tol is None else tol
        # never converge on reused (unchecked) responses: refresh first, then decide
        force_refresh = residual <= 2.0 * floor
        if (residual <= floor and it >= depth + 2 and it > len(warmup)
                and (refresh or not jac_used) and resp_ok):
            status = Status.CONVERGED
            averaging = True
            spread.add(observables(new_phi, new_g, f_new, ntk_over_time(new_phi, new_g, kx, t1, pa), y, p))
            if average_iterations == 0:
                break
        elif it >= max_iterations:
            break

    if status is Status.DIVERGED:
        ntk = ntk_over_time(phis, gs, kx, t1, pa)
        delta_now, f_out = march(y, ntk, eta)
    else:  # the returned kernels are projected onto the PSD cone (the outputs are kept)
        phis = [psd_project(m) for m in phis]
        gs = [psd_project(m) for m in gs]
        ntk = ntk_over_time(phis, gs, kx, t1, pa)
    info = {
        "samples": samples,
        "response_samples": response_samples if use_resp else 0,
        "damping": damping,
        "update": update,
        "control_variate": control_variate,
        "mehler_remainder": remainder,
        "standard_error": standard_errors(spread, se_rel, depth, problem.n_test > 0),
        "standard_error_window": spread.count,
        "response_refreshes": n_refresh,
        "history": history,
        "timings": {**timing, "total": time.perf_counter() - t_start},
        "seed": seed,
    }
    if status is Status.DIVERGED:
        info["reason"] = "kernels became non-finite or exploded (gamma0 * eta past the critical value?)"
    return {"phi": phis, "g": gs, "A": a_resp, "B": b_resp, "f": f_out, "ntk": ntk,
            "status": status, "iterations": it, "residual": residual, "info": info}
