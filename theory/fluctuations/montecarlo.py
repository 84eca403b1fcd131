"""Finite-width fluctuations of nonlinear networks by sampling sites (``docs/finite_width.md`` s. 7).

The single-site process of layer l (docs/theory.md section 2) is represented by ``population`` draws
with FIXED standard normals (common random numbers): sources ``u = F_u zeta_u`` with
``F_u F_u^T = Phi^{l-1}`` (``theory.fluctuations.factor``: the causal factor for the exact update,
the symmetric square root otherwise; ``u^1`` has the exact factor of ``Kx``) and
``r = F_r zeta_r`` (``F_r F_r^T = G^{l+1}``; ``r^L`` is one N(0, 1) scalar), fields by the causal
forward solve. The DMFT map ``F`` is the population average of the integrands
``phi phi^T, g g^T, u g^T, phi r^T`` and of the output integrand

    psi_f(k, mu) = r^L [phi(h(k, mu)) - phi(h(0, mu))] / gamma0
                   + (eta/P) phi(h(k, mu)) sum_{s<k, nu<P} phi(h(s, nu)) Delta_nu(s)

(its average is the exact-update output f~, ``theory.montecarlo.outputs``). ``D`` applied to a tangent
is the population average of the pathwise tangent of each sample: the sources move through the
tangent of the factor, the couplings through the tangents of the responses (``theory.fluctuations.identity``), the
kernels and ``Delta``, and the fields by the forward solve of their tangent. The noise ``kappa``
is sampled with ``samples`` fresh sites per layer, centred per layer, and estimated in two levels
(``docs/finite_width.md`` section 9): the same model at a small population on every site, the
full one on the first ``refine``, both solved in one pass over time
(``theory.fluctuations.march``), or by sweeps (``march=False``; the first-order update, whose
control takes a fixed two). The population-sized products run in the ``work`` dtype (single
precision by default for the exact update), everything else in the solution's. ReLU's ``phi''``
is a delta function that the pathwise tangent of ``g = phi'(h) z`` misses (as in the solver's
responses).
"""

from __future__ import annotations

import time
from typing import Iterator

import torch

from .factor import Causal, Root
from .identity import Identity
from .interface import Solution, Status, mc_responses, solve_fields
from .layout import Layout, factor_psd
from .march import March
from .propagate import Directions, Level, propagate
from .result import assemble

#: Default sampled noise sites over all layers, spread evenly (1000 per layer at L = 2). The
#: standard errors depend mostly on the total (every layer's noise adds to each variance), so
#: fewer sites per layer in a deeper network give about the same errors (measured, deep tanh
#: T = 8, median relative errors of loss, f, NTK, Phi, G: L = 2 with 1000 per layer 8, 8, 4, 4,
#: 13 %; L = 3 with 667 per layer 8, 7, 5, 5, 12 %, with 1000 per layer 9, 5, 4, 4, 10 %), and
#: the cost grows like the depth, as the solve's does, instead of its square.
SAMPLES_TOTAL = 2000
#: Relative eigenvalue cut of the response identity's pseudo-inverses for sampled kernels: the
#: population's round-off is amplified by the inverse of the smallest kept eigenvalue, and with
#: 1e-10 (the exact linear method's cut) the linearised solve stalls at 1e-3 (measured, deep tanh).
MC_RCOND = 1e-6
#: Two-level estimate (docs/finite_width.md section 9): sites per layer also solved by the full
#: model, and the control level's smallest population (it is at least twice the standard normals
#: per site, so that the moment matching is well conditioned). The control is the same exact
#: march as the full model at that population, so the correction only carries the population's
#: effect. Measured (deep tanh, T = 8, 1000 sites per layer, median relative standard errors):
#: at L = 3 the control's loss tangent by two sweeps misses most of the full one (loss 13 % with
#: 64 refined sites, 21 % with 32) while the marched control gives 9 % with 32 at a lower cost;
#: at L = 2 both are alike. A population of 144 instead of 80 at L = 2 lowers the loss error
#: from 10 % to 8 %, and then 32 refined sites are enough (the correction's share of the error
#: is small). Without the march (first-order update) the control takes ``COARSE_SWEEPS`` sweeps:
#: one sweep left the loss 16 % low in three seeds out of three (its tangent misses a heavy
#: tail, so the correction is usually too small, and so is its error estimate).
REFINE, COARSE_POPULATION, COARSE_SWEEPS = 32, 144, 2
#: Directions solved together by the full model and by the control level (the march's per-step
#: overhead is shared by a chunk: 64 full directions run 1.4x faster than 16, 128 control ones
#: 1.2x faster than 64).
FULL_CHUNK, COARSE_CHUNK = 64, 128
#: Largest number of entries of one per-site tangent buffer of the full model's march
#: (n, chunk, population) (64 MiB in single precision): caps its chunk on large problems.
BUFFER_ELEMENTS = 1 << 24


class Population:
    """Sites of one layer at the base point: normals, sources and fields, each (S, n)."""

    def __init__(self, model: "MCModel", l: int, count: int, gen: torch.Generator, *, matched: bool,
                 work: torch.dtype | None = None):
        lay, act = model.lay, model.act
        dt = model.phi[0].dtype
        fu = model.roots_u[l].factor if l >= 2 else lay.kx_factor().to(dt)
        fr = model.roots_r[l].factor if l <= lay.depth - 1 else torch.ones(lay.n, 1, dtype=dt)
        z = torch.randn(count, fu.shape[1] + fr.shape[1], generator=gen, dtype=dt)
        if matched:  # exact first and second moments: mean 0, (1/S) z^T z = I
            z = z - z.mean(0)
            lam, vec = torch.linalg.eigh(z.T @ z / count)
            z = z @ (vec * lam.rsqrt()) @ vec.T
        self.zu, self.zr = z[:, : fu.shape[1]], z[:, fu.shape[1] :]
        self.u, self.r = self.zu @ fu.T, self.zr @ fr.T
        self.h, self.z, self.g, self.ph = solve_fields(self.u, self.r, model.c[l], model.d[l], act, lay.pa)
        self.a = act.dphi(self.h)
        self.b = act.ddphi(self.h) * self.z
        if work is not None and work != dt:  # drawn in the solution's precision, stored in ``work``
            for k in ("zu", "zr", "u", "r", "h", "z", "g", "ph", "a", "b"):
                setattr(self, k, getattr(self, k).to(work))


class MCModel:
    """:class:`theory.fluctuations.propagate.Model` of a nonlinear network around ``sol``."""

    def __init__(self, sol: Solution, *, exact_update: bool, samples: int, population: int,
                 seed: int, chunk: int, rcond: float = MC_RCOND, factor: str = "root", march: bool = False,
                 work: torch.dtype | None = None):
        self.lay = lay = Layout(sol.problem, p_g=sol.problem.n_points)
        self.act, self.exact_update = sol.problem.activation, exact_update
        self.samples, self.chunk, self.seed = samples, chunk, seed
        L, m, n, pa = lay.depth, lay.m, lay.n, lay.pa
        self.phi = [lay.kx.repeat(m, m)] + [sol.phi[l].reshape(n, n) for l in range(L)]
        dt = self.phi[1].dtype
        self.gk = [None] + [sol.g[l].reshape(n, n) for l in range(L)] + [torch.ones(n, n, dtype=dt)]
        self.resp = {l: mc_responses(sol, l) for l in range(1, L)}
        self.f = torch.cat([sol.f_train] + ([sol.f_test] if sol.f_test is not None else []), 1)
        self.delta = lay.y - sol.f_train
        self.ntk, self.step = sol.ntk, lay.eta / lay.p
        self.c, self.d = [None] * (L + 1), [None] * (L + 1)
        for l in range(1, L + 1):
            self.c[l] = lay.c_gd(self.phi[l - 1], self.delta) + (self.resp[l - 1][0] if l >= 2 else 0.0)
            self.d[l] = lay.d_gd(self.gk[l + 1], self.delta) + (self.resp[l][1] if l <= L - 1 else 0.0)
        if factor not in ("root", "causal"):
            raise ValueError(f"factor: unknown value {factor!r}; valid values are ['root', 'causal']")
        make = Root if factor == "root" else lambda k: Causal(k, m=m, p=pa, rcond=rcond)  # noqa: E731
        self.factor, self.phi_key, self.linear = factor, "P", False  # what the march reads
        self.roots_u = {l: make(self.phi[l - 1]) for l in range(2, L + 1)}
        self.roots_r = {l: make(self.gk[l + 1]) for l in range(1, L)}
        self.ident = {l: Identity(*self.resp[l - 1], self.phi[l - 1], self.gk[l], m=m, p_phi=pa,
                                  p_g=pa, rcond=rcond) for l in range(2, L + 1)}
        if population <= self.source_columns():
            raise ValueError(f"population: the moment matching needs more sites per layer than source "
                             f"columns ({self.source_columns()}), got {population}")
        self.dt, self.work = dt, work or dt
        self.cw = [None] + [x.to(self.work) for x in self.c[1:]]
        self.dw = [None] + [x.to(self.work) for x in self.d[1:]]
        gen = torch.Generator().manual_seed(seed)
        self.pop = [None] + [Population(self, l, population, gen, matched=True, work=self.work)
                             for l in range(1, L + 1)]
        self.noise_gen = torch.Generator().manual_seed(seed + 1)
        self.march = March(self) if march else None  # None: solved by sweeps
        self.scales = lay.scales(self.f, self.ntk, [sol.phi_diag(l) for l in range(L)],
                                 [sol.g_diag(l) for l in range(L)])

    def source_columns(self) -> int:
        """Largest number of standard normals per site over the layers (``u`` and ``r`` factors)."""
        lay = self.lay
        cols_u = lambda l: lay.kx_factor().shape[1] if l == 1 else self.roots_u[l].factor.shape[1]  # noqa: E731
        cols_r = lambda l: 1 if l == lay.depth else self.roots_r[l].factor.shape[1]  # noqa: E731
        return max(cols_u(l) + cols_r(l) for l in range(1, lay.depth + 1))

    # ------------------------------------------------------------------ integrands
    def _drive(self, ph: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``sum_{s<k, nu<P} phi(s, nu) Delta_nu(s)`` (..., S, m) for phi (..., S, n)."""
        lay = self.lay
        ph4 = ph.reshape(*ph.shape[:-1], lay.m, lay.pa)[..., : lay.p]
        per = torch.einsum("...kp,...kp->...k", ph4, delta[..., None, :, :] if delta.ndim == 3 else delta)
        return torch.cumsum(per, -1) - per

    def _psi_f(self, ph, r_l, ph0=None) -> torch.Tensor:
        lay = self.lay
        p4 = ph.reshape(*ph.shape[:-1], lay.m, lay.pa)
        lead = r_l[..., None, None] * (p4 - p4[..., :1, :]) / lay.gamma0
        return lead + self.step * p4 * self._drive(ph, self.delta)[..., None]

    def integrands(self, l: int, u, r, g, ph) -> dict[str, torch.Tensor]:
        """Per-site integrands of layer l for sites (c, n): the noise of one virtual site each."""
        L = self.lay.depth
        outer = lambda a, b: a[:, :, None] * b[:, None, :]  # noqa: E731
        st = {f"P{l}": outer(ph, ph), f"G{l}": outer(g, g)}
        if l >= 2:
            st[f"X{l}"] = outer(u, g)
        if l <= L - 1:
            st[f"Y{l}"] = outer(ph, r)
        if l == L and self.exact_update:
            st["f"] = self._psi_f(ph, r[:, 0])
        return st

    # ------------------------------------------------------------------ tangents
    def _fields_sweep(self, l: int, eh: torch.Tensor, ez: torch.Tensor, dg_old: torch.Tensor):
        """One sweep of the field tangent ``dh = eh + C dg``, ``dz = ez + D dphi``,
        ``dg = phi''(h) z dh + phi'(h) dz`` with the previous iterate's ``dg`` (c, S, n; None: zero): the
        causal forward solve is left to the outer iteration (big products instead of a loop
        over time steps; exact at the fixed point)."""
        pop = self.pop[l]
        dh = eh if dg_old is None else eh + dg_old @ self.cw[l].T
        dph = pop.a * dh
        dz = ez + dph @ self.dw[l].T
        return dph, pop.b * dh + pop.a * dz

    def apply(self, s: dict, xi: dict) -> dict:
        """``D s + xi``, layer by layer upwards, each layer seeing the lower layers' new tangents."""
        lay, L = self.lay, self.lay.depth
        dd = -s["f"][:, :, : lay.p]
        cur = dict(s)
        resp = lambda l: self.ident[l].tangent(cur[f"X{l}"], cur[f"Y{l - 1}"], cur[f"P{l - 1}"], cur[f"G{l}"])  # noqa: E731
        out, w = {}, self.work
        for l in range(1, L + 1):
            pop = self.pop[l]
            dc = lay.c_gd(self.phi[l - 1], dd)
            dd_ = lay.d_gd(self.gk[l + 1], dd)
            du = dr = None
            if l >= 2:
                dc = dc + lay.c_gd(cur[f"P{l - 1}"], self.delta) + resp(l)[0]
                du = pop.zu @ self.roots_u[l].tangent(cur[f"P{l - 1}"]).to(w).mT
            if l <= L - 1:
                dd_ = dd_ + lay.d_gd(cur[f"G{l + 1}"], self.delta) + resp(l + 1)[1]
                dr = pop.zr @ self.roots_r[l].tangent(cur[f"G{l + 1}"]).to(w).mT
            eh = pop.g @ dc.to(w).mT + (0.0 if du is None else du)
            ez = pop.ph @ dd_.to(w).mT + (0.0 if dr is None else dr)
            dph, dg = self._fields_sweep(l, eh, ez, cur.get(f"F{l}"))
            out[f"F{l}"] = cur[f"F{l}"] = dg
            for key, v in self._averages(l, pop, dph, dg, du, dr, dd.to(w)).items():
                out[key] = cur[key] = v.to(self.dt) + xi[key]
        if "f" not in out:
            out["f"] = xi["f"].clone()
        return out

    def _averages(self, l, pop, dph, dg, du, dr, dd) -> dict:
        L, S = self.lay.depth, pop.h.shape[0]
        def sym(a, b):
            prod = a.mT @ b / S  # (c, n, n)
            return prod + prod.mT
        out = {f"P{l}": sym(dph, pop.ph), f"G{l}": sym(dg, pop.g)}
        if l >= 2:
            out[f"X{l}"] = (du.mT @ pop.g + pop.u.T @ dg) / S
        if l <= L - 1:
            out[f"Y{l}"] = (dph.mT @ pop.r + pop.ph.T @ dr) / S
        if l == L and self.exact_update:
            lay = self.lay
            delta = self.delta.to(self.work)
            p4 = pop.ph.reshape(S, lay.m, lay.pa)
            d4 = dph.reshape(*dph.shape[:2], lay.m, lay.pa)
            r = pop.r[:, 0]
            lead = r[None, :, None, None] * (d4 - d4[:, :, :1]) / lay.gamma0
            drive = self._drive(pop.ph, delta)  # (S, m)
            ddrive = self._drive(dph, delta) + self._drive(pop.ph[None], dd)
            psi = lead + self.step * (d4 * drive[None, :, :, None] + p4[None] * ddrive[..., None])
            out["f"] = psi.mean(1)
        return out

    # ------------------------------------------------------------------ protocol rest
    def ntk_tangent(self, s: dict) -> torch.Tensor:
        lay, L = self.lay, self.lay.depth
        eq = lay.equal_time
        dk = eq(s["G1"]) * lay.kx
        for l in range(1, L + 1):
            g_next = eq(self.gk[l + 1][None])[0]
            dk = dk + g_next * eq(s[f"P{l}"])
            if l < L:
                dk = dk + eq(s[f"G{l + 1}"]) * eq(self.phi[l][None])[0]
        return dk

    def observables(self, s: dict) -> dict[str, torch.Tensor]:
        lay, L = self.lay, self.lay.depth
        phi = torch.stack([lay.equal_time(s[f"P{l}"]) for l in range(1, L + 1)], 1)
        g = torch.stack([lay.equal_time(s[f"G{l}"]) for l in range(1, L + 1)], 1)
        return lay.output_observables(s["f"], self.f) | {"ntk": self.ntk_tangent(s), "phi": phi, "g": g}

    def block_shapes(self) -> dict[str, tuple[int, ...]]:
        L, n = self.lay.depth, self.lay.n
        shapes = {}
        for l in range(1, L + 1):
            shapes[f"P{l}"] = shapes[f"G{l}"] = (n, n)
            if l >= 2:
                shapes[f"X{l}"] = (n, n)
            if l <= L - 1:
                shapes[f"Y{l}"] = (n, n)
        shapes["f"] = (self.lay.m, self.lay.pa)
        for l in range(1, L + 1):  # per-sample field tangents (the population's dg)
            shapes[f"F{l}"] = (self.pop[l].h.shape[0], n)
        return shapes

    def directions(self) -> Iterator[Directions]:
        """Sampled virtual sites per layer; for a linear activation with ``samples=None`` the
        exact Wick basis instead (``theory.fluctuations.linear``), which makes this method an
        exact second implementation on linear networks."""
        for l in range(1, self.lay.depth + 1):
            if self.samples is None:
                yield from self._wick_directions(l)
                continue
            for s0 in range(0, self.samples, self.chunk):
                c = min(self.chunk, self.samples - s0)
                v = Population(self, l, c, self.noise_gen, matched=False)
                yield Directions(self._noise_state(l, v.u, v.r, v.g, v.ph), torch.ones(c, dtype=v.u.dtype),
                                 l, centred=True)

    def _zero_state(self, c: int, dtype) -> dict[str, torch.Tensor]:
        """Zero noise blocks; the field tangents ``F`` start at zero inside :meth:`apply`, so a
        noise state does not depend on the population (a control level uses it as it is)."""
        shapes = {k: v for k, v in self.block_shapes().items() if not k.startswith("F")}
        return self.lay.zero_state(shapes, c, dtype)

    def _noise_state(self, l, u, r, g, ph) -> dict[str, torch.Tensor]:
        st = self._zero_state(u.shape[0], u.dtype)
        st.update(self.integrands(l, u, r, g, ph))
        return st

    def _wick_directions(self, l: int) -> Iterator[Directions]:
        """Pairs ``a <= b`` of source factor columns; the integrands are quadratic in the sources
        of a linear network, so ``(Q(w_a + w_b) - Q(w_a - w_b)) / 2`` is the direction
        ``w_a w_b^T + w_b w_a^T`` (weight 1) and ``Q(w_a)`` the direction ``w_a w_a^T`` (weight 2)."""
        if not self.act.is_linear:
            raise ValueError("samples: the exact noise basis needs a linear activation; give samples")
        lay = self.lay
        wu = lay.kx_factor() if l == 1 else factor_psd(self.phi[l - 1])
        wr = torch.ones(lay.n, 1, dtype=wu.dtype) if l == lay.depth else factor_psd(self.gk[l + 1])
        cols_u = torch.cat([wu, torch.zeros(lay.n, wr.shape[1], dtype=wu.dtype)], 1)
        cols_r = torch.cat([torch.zeros(lay.n, wu.shape[1], dtype=wu.dtype), wr], 1)
        ia, ib = torch.triu_indices(cols_u.shape[1], cols_u.shape[1])
        quad = lambda u, r: self.integrands(l, u, r, *solve_fields(u, r, self.c[l], self.d[l], self.act, lay.pa)[2:])  # noqa: E731
        for s0 in range(0, ia.numel(), self.chunk):
            a, b = ia[s0 : s0 + self.chunk], ib[s0 : s0 + self.chunk]
            diag = (a == b).to(wu.dtype)
            ua, ub, ra, rb = cols_u[:, a].T, cols_u[:, b].T, cols_r[:, a].T, cols_r[:, b].T
            plus, minus = quad(ua + ub, ra + rb), quad(ua - ub, ra - rb)
            single = quad(ua, ra)
            st = self._zero_state(ua.shape[0], ua.dtype)
            for k in plus:
                sel = diag.reshape(-1, *([1] * (plus[k].ndim - 1)))
                st[k] = sel * single[k] + (1 - sel) * 0.5 * (plus[k] - minus[k])
            yield Directions(st, 1.0 + diag, l, centred=False)

    def base_residual(self) -> float:
        """Largest relative difference between the population's kernels and the solution's
        (Monte Carlo noise of the population, not an error of the solution)."""
        res = 0.0
        for l in range(1, self.lay.depth + 1):
            S, ph, g = self.pop[l].h.shape[0], self.pop[l].ph.to(self.dt), self.pop[l].g.to(self.dt)
            for new, old in ((ph.T @ ph / S, self.phi[l]), (g.T @ g / S, self.gk[l])):
                res = max(res, float((new - old).norm() / old.norm()))
        return res


def full_chunk(chunk: int, n: int, population: int) -> int:
    """Directions the full model solves together: ``chunk``, at most ``FULL_CHUNK`` and
    ``BUFFER_ELEMENTS / (n population)``, at least 1."""
    return max(1, min(chunk, FULL_CHUNK, BUFFER_ELEMENTS // (n * population)))


def mc_fluctuations(sol: Solution, *, update: str, samples: int | None, population: int,
                    tol: float, max_iterations: int, chunk: int, seed: int,
                    refine: int | None = None, coarse_population: int | None = None, march: bool = False,
                    work: torch.dtype | None = None, progress: bool = False):
    """``theory.fluctuations`` for a nonlinear network (also runs on linear ones, as a check).

    Sampled noise: every one of the ``samples`` sites per layer goes through a control level
    (``coarse_population`` sites, solved like the full model for the exact update, by
    ``COARSE_SWEEPS`` sweeps for the first-order one) and the first ``refine`` through the
    full model (``population``), combined by the unbiased multilevel estimate
    (:func:`theory.fluctuations.estimate.multilevel_variance`); ``refine >= samples`` solves
    every site with the full model. The full model draws its sources by the causal factor for
    the exact update (the symmetric root for the first-order one); ``march``: it is solved in one
    exact pass over time (``theory.fluctuations.march``), otherwise by sweeps to ``tol``."""
    t0 = time.perf_counter()
    if samples is None and not sol.problem.activation.is_linear:
        samples = -(-SAMPLES_TOTAL // sol.problem.depth)
    refine = REFINE if refine is None else refine
    two_level = samples is not None and refine < samples  # exact noise needs no estimate
    fac = "causal" if update == "exact" else "root"  # the march needs the exact output update
    n = (sol.problem.steps + 1) * sol.problem.n_points
    model = MCModel(sol, exact_update=update == "exact", samples=samples, population=population, seed=seed,
                    chunk=min(chunk, COARSE_CHUNK) if two_level else full_chunk(chunk, n, population),
                    factor=fac, march=march, work=work)
    levels = None
    if two_level:
        if coarse_population is None:  # twice the normals per site: a well-conditioned matching
            coarse_population = max(COARSE_POPULATION, 2 * model.source_columns())
        # the same model at the control's population, solved the same way (first-order update:
        # the root factor and a fixed number of sweeps)
        cheap = MCModel(sol, exact_update=update == "exact", samples=samples, population=coarse_population,
                        seed=seed + 2, chunk=model.chunk, work=work, factor=fac, march=march)
        levels = [Level(cheap, samples, None if update == "exact" else COARSE_SWEEPS, model.chunk)]
        levels.append(Level(model, refine, None, full_chunk(chunk, n, population)))
    var, cov, se, rep = propagate(model, tol=tol, max_iterations=max_iterations, levels=levels,
                                  progress=progress)
    info = {"method": "montecarlo", "update": update, "noise": "exact" if samples is None else "sampled",
            "solver": "march" if march else "iterate",
            "samples": samples, "population": population, "directions": rep.directions,
            "precision": str(model.work).removeprefix("torch."),
            "refine": refine if two_level else samples,
            "coarse_population": coarse_population if two_level else None,
            "control_solver": None if not two_level else "march" if march else
            "iterate" if update == "exact" else f"{COARSE_SWEEPS} sweeps",
            "population_residual": model.base_residual(), "standard_error": se,
            "timings": {"propagate": time.perf_counter() - t0}}
    status = Status.CONVERGED if rep.converged else Status.MAX_ITERATIONS
    if not rep.converged:
        info["reason"] = f"linearised solve changed by {rep.change:.3g} > tol after {rep.iterations} iterations"
    return assemble(sol, "montecarlo", var, cov, status=status, iterations=rep.iterations,
                    residual=rep.change, info=info)
