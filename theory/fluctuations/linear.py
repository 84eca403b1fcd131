"""Exact finite-width fluctuations of deep linear networks (``docs/finite_width.md`` section 5).

For ``phi(h) = h`` the single site of layer ``l`` is linear in its Gaussian sources
``x = (u, r)``, ``u ~ N(0, H^{l-1})`` (n = (T+1) P_all entries) and ``r ~ N(0, G^{l+1})``
(m = T+1 entries; a linear network's backward field has no point index)::

    g = V (r + D u),   h = u + C g = P_u u + P_r r,   V = (I - D C)^{-1},
    P_u = I + C V D,   P_r = C V,
    C = A^{l-1} + (eta gamma0 / P) [s < k] H^{l-1} Delta,   D = B^l + (eta gamma0 / P) [s < k] G^{l+1} Delta

so every single-site average is a bilinear form in the source covariance: the DMFT map ``F`` is
algebraic and its derivative ``D`` is written out below by the product rule (exact, no
sampling). The order parameters per layer are ``H^l = <h h^T>`` (n, n), ``G^l = <g g^T>`` (m, m),
``X^l = <u g^T>`` (n, m, l >= 2), ``Y^l = <h r^T>`` (n, m, l <= L-1), and the outputs
``f~(k, mu) = (<g(k) h(k, mu)> - <g(0) h(0, mu)>) / gamma0`` of layer L (exact update). The
responses ``A^{l-1}``, ``B^{l-1}`` follow from ``X^l``, ``Y^{l-1}``, ``H^{l-1}``, ``G^l`` through the
transpose identity (``theory.fluctuations.identity``).

Single-site noise is exact (Wick): with a factor ``Sigma_x = W W^T`` of the source covariance
(columns ``w_a``, rank R), ``x x^T - Sigma_x = sum_{a<b} z_a z_b (w_a w_b^T + w_b w_a^T)
+ sum_a (z_a^2 - 1) w_a w_a^T`` with uncorrelated coefficients of variance 1 and 2, so the
``R (R + 1) / 2`` directions ``w_a w_b^T + w_b w_a^T`` (weight 1) and ``w_a w_a^T`` (weight 2)
give ``kappa`` exactly. ``samples=M`` draws ``M`` sites per layer instead (for large R).
"""

from __future__ import annotations

import time
from typing import Iterator

import torch

from .identity import RCOND, Identity
from .interface import Solution, Status, linear_responses
from .propagate import Directions, propagate
from .quadrature import LinearMarch
from .result import assemble
from .layout import Layout, factor_psd


def _sym(x: torch.Tensor) -> torch.Tensor:
    return x + x.mT


class LinearLayer:
    """Base single-site maps of one layer and their tangent (shapes in the module docstring)."""

    def __init__(self, c, d, su, sr):
        m = d.shape[0]
        self.c, self.d, self.su, self.sr = c, d, su, sr
        self.v = torch.linalg.inv(torch.eye(m, dtype=c.dtype) - d @ c)
        self.kgu = self.v @ d  # g = kgu u + v r
        self.pr = c @ self.v  # h = P_u u + pr r
        self.su_put = su + (su @ self.kgu.mT) @ c.mT  # Sigma_u P_u^T
        self.kgu_su = self.kgu @ su  # (m, n)
        self.ks = self.kgu @ self.su_put  # K_gu Sigma_u P_u^T (m, n)
        self.ksk = self.kgu_su @ self.kgu.mT  # (m, m)

    def pu(self, x: torch.Tensor) -> torch.Tensor:
        """``P_u x`` for x (..., n, k) without forming the (n, n) P_u."""
        return x + self.c @ (self.kgu @ x)

    def averages(self) -> dict[str, torch.Tensor]:
        """Base single-site averages: H (n, n), G (m, m), X, Y (n, m), Xhg = <h g^T> (n, m)."""
        pr_sr = self.pr @ self.sr
        return {"H": self.pu(self.su_put) + pr_sr @ self.pr.mT,
                "G": self.ksk + self.v @ self.sr @ self.v.mT,
                "X": self.kgu_su.mT, "Y": pr_sr,
                "Xhg": self.su_put.mT @ self.kgu.mT + pr_sr @ self.v.mT}

    def tangent(self, dsu, dsr, dc, dd, want: set) -> dict[str, torch.Tensor]:
        """First-order change of the averages for batched (c, ...) changes of the drivers.

        dsu (c, n, n) or None, dsr (c, m, m) or None, dc (c, n, m), dd (c, m, n).
        """
        v, c, kgu = self.v, self.c, self.kgu
        dv = v @ (dd @ c + self.d @ dc) @ v  # V = Q^{-1}, dQ = -(dD C + D dC)
        dkgu = dv @ self.d + v @ dd
        dpr = dc @ v + c @ dv
        out = {}
        if "H" in want:
            dh = _sym(dc @ self.ks + c @ (dkgu @ self.su_put)) + _sym(dpr @ (self.sr @ self.pr.mT))
            if dsu is not None:
                dh = dh + self.pu(self.pu(dsu).mT)
            if dsr is not None:
                dh = dh + self.pr @ dsr @ self.pr.mT
            out["H"] = dh
        if "G" in want:
            dg = _sym(dkgu @ self.kgu_su.mT) + _sym(dv @ self.sr @ v.mT)
            if dsu is not None:
                dg = dg + kgu @ dsu @ kgu.mT
            if dsr is not None:
                dg = dg + v @ dsr @ v.mT
            out["G"] = dg
        if "X" in want:
            dx = self.su @ dkgu.mT
            out["X"] = dx if dsu is None else dx + dsu @ kgu.mT
        if "Y" in want:
            dy = dpr @ self.sr
            out["Y"] = dy if dsr is None else dy + self.pr @ dsr
        if "Xhg" in want:
            dxhg = (dc @ self.ksk + c @ (dkgu @ self.kgu_su.mT) + self.su_put.mT @ dkgu.mT
                    + dpr @ self.sr @ v.mT + self.pr @ self.sr @ dv.mT)
            if dsu is not None:
                dxhg = dxhg + self.pu(dsu @ kgu.mT)
            if dsr is not None:
                dxhg = dxhg + self.pr @ dsr @ v.mT
            out["Xhg"] = dxhg
        return out

    def columns(self, wu: torch.Tensor | None, wr: torch.Tensor | None):
        """Images of factor columns: ``(u, r, h, g)`` for source columns (u-part, r-part)."""
        n, m = self.c.shape
        cols = []
        if wu is not None:
            cols.append((wu, torch.zeros(m, wu.shape[1], dtype=wu.dtype), self.pu(wu), self.kgu @ wu))
        if wr is not None:
            cols.append((torch.zeros(n, wr.shape[1], dtype=wr.dtype), wr, self.pr @ wr, self.v @ wr))
        return tuple(torch.cat(parts, 1) for parts in zip(*cols))


class LinearModel:
    """:class:`theory.fluctuations.propagate.Model` of a deep linear network around ``sol``."""

    def __init__(self, sol: Solution, *, exact_update: bool, samples: int | None, seed: int,
                 chunk: int, rcond: float = RCOND, march: bool = False):
        self.lay = lay = Layout(sol.problem, p_g=1)
        self.exact_update, self.samples, self.seed, self.chunk = exact_update, samples, seed, chunk
        L, m, n = lay.depth, lay.m, lay.n
        dt = sol.ntk.dtype
        self.h = [lay.kx.repeat(m, m).to(dt)] + [sol.phi[l].reshape(n, n) for l in range(L)]
        self.g = [None] + [sol.g[l][:, 0, :, 0] for l in range(L)] + [torch.ones(m, m, dtype=dt)]
        self.resp = {l: linear_responses(sol, l) for l in range(1, L)}
        self.f = torch.cat([sol.f_train] + ([sol.f_test] if sol.f_test is not None else []), 1)
        self.delta = lay.y - sol.f_train
        self.ntk, self.step = sol.ntk, lay.eta / lay.p
        self.ident = {l: Identity(*self.resp[l - 1], self.h[l - 1], self.g[l], m=m, p_phi=lay.pa,
                                  p_g=1, rcond=rcond) for l in range(2, L + 1)}
        self.layers = [None] + [self._layer(l) for l in range(1, L + 1)]
        self.scales = lay.scales(self.f, self.ntk, [sol.phi_diag(l) for l in range(L)],
                                 [sol.g_diag(l) for l in range(L)])
        self.march = None  # solved by sweeps, or in one pass over time (exact update)
        if march:
            if not exact_update:
                raise ValueError("march: the one-pass solve needs update='exact'")
            self.march = LinearMarch(self)
            self.chunk = LinearMarch.chunk(chunk, n)

    def _layer(self, l: int) -> LinearLayer:
        lay, L = self.lay, self.lay.depth
        c = lay.c_gd(self.h[l - 1], self.delta)
        d = lay.d_gd(self.g[l + 1], self.delta)
        if l >= 2:
            c = c + self.resp[l - 1][0]
        if l <= L - 1:
            d = d + self.resp[l][1]
        return LinearLayer(c, d, self.h[l - 1], self.g[l + 1])

    # ------------------------------------------------------------------ checks
    def base_residual(self) -> float:
        """Relative self-consistency of the solution under this map (round-off if consistent)."""
        L, res = self.lay.depth, 0.0
        for l in range(1, L + 1):
            av = self.layers[l].averages()
            res = max(res, _rel(av["H"], self.h[l]), _rel(av["G"], self.g[l]))
            if l == L and self.exact_update:
                res = max(res, _rel(self.outputs_from_xhg(av["Xhg"]), self.f))
            if l >= 2:
                x = av["X"]
                y = self.layers[l - 1].averages()["Y"]
                res = max(res, self.ident[l].residual(x, y))
        return res

    # ------------------------------------------------------------------ the Model protocol
    def apply(self, s: dict, xi: dict, jacobi: bool = False) -> dict:
        """``D s + xi``, layer by layer upwards, each layer seeing the lower layers' new tangents
        (Gauss-Seidel), or with ``jacobi=True`` the plain ``D s + xi`` (every layer from ``s``)."""
        lay, L = self.lay, self.lay.depth
        dd = -s["f"][:, :, : lay.p]
        cur = dict(s)
        resp = lambda l: self.ident[l].tangent(cur[f"X{l}"], cur[f"Y{l - 1}"], cur[f"H{l - 1}"], cur[f"G{l}"])  # noqa: E731
        out = {}
        for l in range(1, L + 1):
            dh_prev = cur[f"H{l - 1}"] if l >= 2 else None
            dg_next = cur[f"G{l + 1}"] if l <= L - 1 else None
            dc = lay.c_gd(self.h[l - 1], dd)
            if l >= 2:
                dc = dc + lay.c_gd(dh_prev, self.delta) + resp(l)[0]
            dd_ = lay.d_gd(self.g[l + 1], dd)
            if l <= L - 1:
                dd_ = dd_ + lay.d_gd(dg_next, self.delta) + resp(l + 1)[1]
            want = {"H", "G"} | ({"X"} if l >= 2 else set()) | ({"Y"} if l <= L - 1 else set())
            if l == L and self.exact_update:
                want.add("Xhg")
            t = self.layers[l].tangent(dh_prev, dg_next, dc, dd_, want)
            if "Xhg" in t:
                t["f"] = self.outputs_from_xhg(t.pop("Xhg"))
            for k, v in t.items():
                key = "f" if k == "f" else f"{k}{l}"
                out[key] = v + xi[key]
                if not jacobi:
                    cur[key] = out[key]
        if "f" not in out:
            out["f"] = xi["f"].clone()
        return out

    def ntk_tangent(self, s: dict) -> torch.Tensor:
        lay, L = self.lay, self.lay.depth
        eq = lambda k: torch.diagonal(k, dim1=1, dim2=2)  # noqa: E731  (c, m) of (c, m, m)
        dk = eq(s["G1"])[:, :, None, None] * lay.kx
        for l in range(1, L + 1):
            hd = lay.equal_time(self.h[l][None])[0]
            g_next = torch.diagonal(self.g[l + 1])[:, None, None]
            dk = dk + g_next * lay.equal_time(s[f"H{l}"])
            if l < L:
                dk = dk + eq(s[f"G{l + 1}"])[:, :, None, None] * hd
        return dk

    def observables(self, s: dict) -> dict[str, torch.Tensor]:
        lay, L = self.lay, self.lay.depth
        pa = lay.pa
        phi = torch.stack([lay.equal_time(s[f"H{l}"]) for l in range(1, L + 1)], 1)
        g = torch.stack([torch.diagonal(s[f"G{l}"], dim1=1, dim2=2) for l in range(1, L + 1)], 1)
        g = g[..., None, None].expand(*g.shape, pa, pa)
        return lay.output_observables(s["f"], self.f) | {"ntk": self.ntk_tangent(s), "phi": phi, "g": g}

    def directions(self) -> Iterator[Directions]:
        """Each layer's noise directions in chunks of ``chunk``; for the march, the exact basis of
        all layers in chunks of ``chunk`` (exact directions need no group)."""
        per_layer = (d for l in range(1, self.lay.depth + 1) for d in self._layer_directions(l))
        if self.march is None or self.samples is not None:
            yield from per_layer
            return
        held: list[Directions] = []
        for d in per_layer:
            held.append(d)
            while sum(int(h.weight.numel()) for h in held) >= self.chunk:
                yield from self._take(held, self.chunk)
        if held:
            yield from self._take(held, sum(int(h.weight.numel()) for h in held))

    @staticmethod
    def _take(held: list, count: int) -> Iterator[Directions]:
        """The first ``count`` directions of ``held`` as one chunk (removed from ``held``)."""
        state = {k: torch.cat([h.state[k] for h in held]) for k in held[0].state}
        weight = torch.cat([h.weight for h in held])
        rest = {k: v[count:] for k, v in state.items()}
        held.clear()
        if weight.numel() > count:
            held.append(Directions(rest, weight[count:], 0, centred=False))
        yield Directions({k: v[:count] for k, v in state.items()}, weight[:count], 0, centred=False)

    def _layer_directions(self, l: int) -> Iterator[Directions]:
        """Exact Wick basis of layer l's noise (pairs a <= b of factor columns), or samples."""
        wu = self.lay.kx_factor() if l == 1 else factor_psd(self.h[l - 1])
        cols = self.layers[l].columns(wu, factor_psd(self.g[l + 1]))  # (u, r, h, g)
        rank = cols[0].shape[1]
        if self.samples is None:
            ia, ib = torch.triu_indices(rank, rank)
            for s0 in range(0, ia.numel(), self.chunk):
                a, b = ia[s0 : s0 + self.chunk], ib[s0 : s0 + self.chunk]
                diag = a == b
                half = torch.where(diag, 0.5, 1.0).to(cols[0].dtype)
                left = tuple(c[:, a].T for c in cols)
                right = tuple((c[:, b] * half).T for c in cols)
                w = torch.where(diag, 2.0, 1.0).to(cols[0].dtype)
                yield Directions(self.noise_blocks(l, left, right), w, l, centred=False)
            return
        gen = torch.Generator().manual_seed(self.seed + 7919 * l)
        for s0 in range(0, self.samples, self.chunk):
            c = min(self.chunk, self.samples - s0)
            z = torch.randn(rank, c, generator=gen, dtype=cols[0].dtype)
            v = tuple((col @ z).T for col in cols)
            half = tuple(0.5 * x for x in v)
            yield Directions(self.noise_blocks(l, v, half), torch.ones(c, dtype=z.dtype), l, centred=True)

    def outputs_from_xhg(self, xhg: torch.Tensor) -> torch.Tensor:
        """``f~(k, mu) = (Xhg[(k, mu), k] - Xhg[(0, mu), 0]) / gamma0`` for Xhg (..., n, m)."""
        m, pa = self.lay.m, self.lay.pa
        x4 = xhg.reshape(*xhg.shape[:-2], m, pa, m)
        eq = torch.diagonal(x4, dim1=-3, dim2=-1).mT  # (..., m, pa)
        return (eq - eq[..., :1, :]) / self.lay.gamma0

    def noise_blocks(self, l: int, left, right) -> dict[str, torch.Tensor]:
        """Noise state for the symmetrised products of column images ``left``/``right``:
        each a tuple (u, r, h, g) of (c, dim) rows; block = a b^T + b a^T."""
        (ua, ra, ha, ga), (ub, rb, hb, gb) = left, right
        pair = lambda a, b: a[:, :, None] * b[:, None, :] + b[:, :, None] * a[:, None, :]  # noqa: E731
        st = self.lay.zero_state(self.block_shapes(), ha.shape[0], ha.dtype)
        st[f"H{l}"] = pair(ha, hb)
        st[f"G{l}"] = pair(ga, gb)
        if l >= 2:
            st[f"X{l}"] = ua[:, :, None] * gb[:, None, :] + ub[:, :, None] * ga[:, None, :]
        if l <= self.lay.depth - 1:
            st[f"Y{l}"] = ha[:, :, None] * rb[:, None, :] + hb[:, :, None] * ra[:, None, :]
        if l == self.lay.depth and self.exact_update:
            xhg = ha[:, :, None] * gb[:, None, :] + hb[:, :, None] * ga[:, None, :]
            st["f"] = self.outputs_from_xhg(xhg)
        return st

    def block_shapes(self) -> dict[str, tuple[int, ...]]:
        L, n, m = self.lay.depth, self.lay.n, self.lay.m
        shapes = {}
        for l in range(1, L + 1):
            shapes[f"H{l}"], shapes[f"G{l}"] = (n, n), (m, m)
            if l >= 2:
                shapes[f"X{l}"] = (n, m)
            if l <= L - 1:
                shapes[f"Y{l}"] = (n, m)
        shapes["f"] = (m, self.lay.pa)
        return shapes


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-300)


def linear_fluctuations(sol: Solution, *, update: str, samples: int | None, population: int,
                        tol: float, max_iterations: int, chunk: int, seed: int, march: bool = False,
                        progress: bool = False):
    """``theory.fluctuations`` for a deep linear network (``population`` is not used); ``march``:
    solve in one pass over time (:class:`theory.fluctuations.quadrature.LinearMarch`), each chunk
    checked by a sweep of the closed-form map and polished by sweeps where that fails ``tol``."""
    t0 = time.perf_counter()
    model = LinearModel(sol, exact_update=update == "exact", samples=samples, seed=seed, chunk=chunk,
                        march=march)
    base = model.base_residual()
    var, cov, se, rep = propagate(model, tol=tol, max_iterations=max_iterations, progress=progress)
    info = {"method": "linear", "update": update, "noise": "exact" if samples is None else "sampled",
            "solver": "march" if march else "iterate",
            "directions": rep.directions, "base_residual": base, "standard_error": se,
            "timings": {"propagate": time.perf_counter() - t0}}
    status = Status.CONVERGED if rep.converged else Status.MAX_ITERATIONS
    if not rep.converged:
        info["reason"] = f"linearised solve changed by {rep.change:.3g} > tol after {rep.iterations} iterations"
    return assemble(sol, "linear", var, cov, status=status, iterations=rep.iterations,
                    residual=rep.change, info=info)
