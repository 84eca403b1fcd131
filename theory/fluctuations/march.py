"""The linearised Monte Carlo map solved in one pass over time (``docs/finite_width.md`` s. 9).

With sources drawn by the causal factor (``theory.fluctuations.factor.Causal``) every quantity at
time ``k`` depends only on quantities at times ``<= k``, so ``t = D t + xi`` is solved exactly by
marching over ``k``; within a time step, the forward quantities go up the layers and the
backward ones down (docs/theory.md section 2):

    up, l = 1..L:   du(k) (factor rows from dPhi^{l-1}(<=k, <=k)), dX^l(k, <k), dY^{l-1}(k, <k),
                    row k of dA^{l-1} (identity), dh(k) = du(k) + g(<k) dC(k, <k)^T + dg(<k) C(k, <k)^T,
                    dphi(k), dPhi^l(k, <=k), and at l = L the output f~(k)
    down, l = L..1: dr(k) (factor rows from dG^{l+1}), dY^l(<=k, k), row k of dB^l (identity),
                    dz(k) = dr(k) + phi(<=k) dD(k, <=k)^T + dphi(<=k) D(k, <=k)^T,
                    dg(k), dG^l(k, <=k), dX^l(<=k, k)

where ``dC``, ``dD`` are the coupling tangents of :meth:`MCModel.apply` and each entry also gets
its noise ``xi``. It equals the converged iteration of the same model (tested). Each step forms
only the rows it needs, and the per-site tangents are stored time-point major (n, c, S), so
every average over the sites is one plain matrix product: one to two sweeps' time (6.5 ms per
direction at L = 3, T = 8, population 1000, single precision) against 8-13 sweeps for the
iteration. Exact output update only.
"""

from __future__ import annotations

import torch


class _Rows:
    """Slices of one time step ``k`` with ``p`` entries per time."""

    def __init__(self, k: int, p: int):
        self.blk, self.pre, self.past = slice(k * p, (k + 1) * p), slice(0, (k + 1) * p), slice(0, k * p)


def _sym_fill(t: torch.Tensor, r: _Rows, val: torch.Tensor) -> None:
    """Set ``t[:, k, <=k] = val`` and its mirror ``t[:, <=k, k]``."""
    t[:, r.blk, r.pre] = val
    t[:, r.pre, r.blk] = val.mT


class March:
    """One-pass solve of ``t = D t + xi`` for a model of sites drawn by causal factors.

    ``model``: an :class:`theory.fluctuations.montecarlo.MCModel` built with ``factor="causal"``,
    or the exact quadrature sites of a linear network
    (:class:`theory.fluctuations.quadrature.LinearSites`); either provides its layout ``lay``
    (``lay.p_g`` points per time in the backward fields: ``P_all``, or 1 for a linear network),
    the sites ``pop[l]``, the causal factors ``roots_u``, ``roots_r``, the identities ``ident``,
    the base kernels ``phi``, ``gk``, couplings ``cw``, ``dw``, ``delta``, ``step``, the dtypes
    ``dt`` (state) and ``work`` (site products), and ``phi_key``, the state's name of the forward
    kernels ("P" or "H"). A linear model (``linear = True``) has ``phi = h`` and ``g = z``.
    """

    def __init__(self, model):
        if model.factor != "causal" or not model.exact_update:
            raise ValueError("march: needs a model with factor='causal' and the exact output update")
        self.model = model
        self.pk, self.linear = model.phi_key, model.linear
        self._cache: tuple[int, dict, dict] | None = None  # buffers for chunks of one size
        # the elementwise factors of the field tangents, time-point major (n, S) like the buffers
        if not self.linear:
            self.a_t = {l: model.pop[l].a.T.contiguous() for l in range(1, model.lay.depth + 1)}
            self.b_t = {l: model.pop[l].b.T.contiguous() for l in range(1, model.lay.depth + 1)}

    def solve(self, xi: dict) -> dict:
        """The solution state (the blocks of ``xi``: P, G, X, Y (c, n, n) and f (c, m, P_all))."""
        md, lay = self.model, self.model.lay
        L, m = lay.depth, lay.m
        c = next(iter(xi.values())).shape[0]
        self.t = {k: torch.zeros_like(v) for k, v in xi.items()}
        self.xi = xi
        self.dd = torch.zeros(c, m, lay.p, dtype=xi["f"].dtype)
        self.f, self.dh = self._buffers(c), {}
        work = self._cache[2]
        self.dfu, self.dfr, self.da, self.dbt, self.rhs = (work[k] for k in ("dfu", "dfr", "da", "dbt", "rhs"))
        for k in range(m):
            r, q = _Rows(k, lay.pa), _Rows(k, lay.p_g)  # forward and backward rows of time k
            for l in range(1, L + 1):
                self._up(l, k, r, q)
            for l in range(L, 0, -1):
                self._down(l, k, r, q)
        return self.t

    # ------------------------------------------------------------------ helpers
    def _buffers(self, c: int) -> dict:
        """Zeroed per-site tangent buffers of each layer, (n, c, S): time-point major, so that a
        time block is one contiguous slab and every product over the sites is a plain matrix
        product: ``dph``, ``dg`` (every layer), ``du`` (layers >= 2, whose sources move), ``dr``
        (layers <= L - 1). Kept, with the work tensors of a solve (the factors' tangents ``dfu``,
        ``dfr``, the identities' ``da``, ``dbt``, ``rhs``), between solves of chunks of the same
        size: a fresh multi-MiB allocation costs 0.05-9 ms in page faults, a warm one is zeroed
        in 0.05 ms."""
        md, L, n, ng = self.model, self.model.lay.depth, self.model.lay.n, self.model.lay.ng
        if self._cache is None or self._cache[0] != c:
            z = lambda l, rows: torch.zeros(rows, c, md.pop[l].h.shape[0], dtype=md.pop[l].h.dtype)  # noqa: E731
            need = {"dph": (range(1, L + 1), n), "dg": (range(1, L + 1), ng), "du": (range(2, L + 1), n),
                    "dr": (range(1, L), ng)}
            dt = md.dt
            zc = lambda shape: torch.zeros(c, *shape, dtype=dt)  # noqa: E731
            work = {"dfu": {l: zc(md.roots_u[l].factor.shape) for l in md.roots_u},
                    "dfr": {l: zc(md.roots_r[l].factor.shape) for l in md.roots_r},
                    **{k: {l: zc(md.ident[l].a.shape) for l in md.ident} for k in ("da", "dbt", "rhs")}}
            self._cache = (c, {k: {l: z(l, rows) for l in ls} for k, (ls, rows) in need.items()}, work)
        for group in (self._cache[1], self._cache[2]):
            for per in group.values():
                for buf in per.values():
                    buf.zero_()
        return self._cache[1]

    @staticmethod
    def _avg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``(1/S) sum_s a(s, i) b(s, j)`` (c, i, j) for one of a, b a buffer slab (., c, S) and
        the other sites (S, .), as one matrix product (the directions folded into its rows)."""
        if a.ndim == 3:
            i, c, s = a.shape
            return (a.reshape(i * c, s) @ b).reshape(i, c, b.shape[1]).transpose(0, 1) / s
        j, c, s = b.shape
        return (a.T @ b.reshape(j * c, s).T).reshape(a.shape[1], j, c).permute(2, 0, 1) / s

    @staticmethod
    def _mul(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``sum_a w(c, b, a) y(s, a)`` as a slab (b, c, S), for sites y (S, a) and a batch w."""
        c, b, a = w.shape
        return (w.transpose(0, 1).reshape(b * c, a).to(y.dtype) @ y.T).reshape(b, c, y.shape[0])

    @staticmethod
    def _couple(m: torch.Tensor, slab: torch.Tensor) -> torch.Tensor:
        """``sum_a m(b, a) slab(a, c, S)`` (b, c, S) for a fixed coupling block m."""
        a, c, s = slab.shape
        return (m @ slab.reshape(a, c * s)).reshape(m.shape[0], c, s)

    def _put(self, key: str, rows, cols, val: torch.Tensor) -> None:
        self.t[key][:, rows, cols] = val.to(self.xi[key].dtype) + self.xi[key][:, rows, cols]

    def _rhs(self, l: int, rows: slice, cols: slice) -> torch.Tensor:
        """The identity's right side of layers (l-1, l) on the entries one row step needs, from
        the current state (earlier entries of the buffer were filled at earlier steps)."""
        t, buf = self.t, self.rhs[l]
        buf[:, rows, cols] = self.model.ident[l].rhs_block(rows, cols, t[f"X{l}"], t[f"Y{l - 1}"],
                                                            t[f"{self.pk}{l - 1}"], t[f"G{l}"])
        return buf

    # ------------------------------------------------------------------ the two passes
    def _up(self, l: int, k: int, r: _Rows, q: _Rows) -> None:
        md, lay, t, f, pk = self.model, self.model.lay, self.t, self.f, self.pk
        pop, L = md.pop[l], lay.depth
        dc = lay.c_row(md.phi[l - 1], self.dd, k)  # (c, P_all, k p_g)
        if l >= 2:
            md.roots_u[l].tangent_rows(k, t[f"{pk}{l - 1}"], self.dfu[l])
            f["du"][l][r.blk] = self._mul(pop.zu, self.dfu[l][:, r.blk, :])
            du_k = f["du"][l][r.blk]
            lower = md.pop[l - 1]
            self._put(f"X{l}", r.blk, q.past, self._avg(du_k, pop.g[:, q.past]) + self._avg(pop.u[:, r.blk], f["dg"][l][q.past]))
            self._put(f"Y{l - 1}", r.blk, q.past, self._avg(f["dph"][l - 1][r.blk], lower.r[:, q.past])
                      + self._avg(lower.ph[:, r.blk], f["dr"][l - 1][q.past]))
            md.ident[l].row_a(k, self._rhs(l, r.blk, q.past), self.da[l], self.dbt[l])
            dc = dc + lay.c_row(t[f"{pk}{l - 1}"], md.delta, k) + self.da[l][:, r.blk, q.past]
        dh = self._mul(pop.g[:, q.past], dc) + self._couple(md.cw[l][r.blk, q.past], f["dg"][l][q.past])
        if l >= 2:
            dh = dh + f["du"][l][r.blk]
        self.dh[l] = dh  # this time step's (P_all, c, S), for the down pass
        f["dph"][l][r.blk] = dh if self.linear else self.a_t[l][r.blk, None, :] * dh
        dph = f["dph"][l]
        val = self._avg(dph[r.blk], pop.ph[:, r.pre]) + self._avg(pop.ph[:, r.blk], dph[r.pre])
        _sym_fill(t[f"{pk}{l}"], r, val.to(md.dt) + self.xi[f"{pk}{l}"][:, r.blk, r.pre])
        if l == L:
            self._output(k, pop)

    def _output(self, k: int, pop) -> None:
        """``df~(k)``: the tangent of the output integrand's average (``MCModel._averages``)."""
        md, lay = self.model, self.model.lay
        S, pa, p = pop.h.shape[0], lay.pa, lay.p
        dph = self.f["dph"][lay.depth]  # (n, c, S)
        d_k, d_0 = dph[k * pa : (k + 1) * pa], dph[:pa]
        ph_k = pop.ph[:, k * pa : (k + 1) * pa].T[:, None, :]  # (P_all, 1, S)
        lead = pop.r[:, 0] * (d_k - d_0) / lay.gamma0
        past = pop.ph[:, : k * pa].reshape(S, k, pa)[:, :, :p]
        dpast = dph[: k * pa].reshape(k, pa, dph.shape[1], S)[:, :p]
        delta, dd = md.delta[:k].to(md.work), self.dd[:, :k].to(md.work)
        drive = torch.einsum("skp,kp->s", past, delta)
        ddrive = torch.einsum("kpcs,kp->cs", dpast, delta) + torch.einsum("skp,ckp->cs", past, dd)
        psi = lead + md.step * (d_k * drive + ph_k * ddrive)  # (P_all, c, S)
        self.t["f"][:, k] = psi.mean(-1).T.to(md.dt) + self.xi["f"][:, k]
        self.dd[:, k] = -self.t["f"][:, k, :p]

    def _down(self, l: int, k: int, r: _Rows, q: _Rows) -> None:
        md, lay, t, f = self.model, self.model.lay, self.t, self.f
        pop, L = md.pop[l], lay.depth
        dd_ = torch.zeros(self.dd.shape[0], lay.p_g, (k + 1) * lay.pa, dtype=self.dd.dtype)
        dd_[:, :, r.past] = lay.d_row(md.gk[l + 1], self.dd, k)  # the coupling is strictly causal
        if l <= L - 1:
            md.roots_r[l].tangent_rows(k, t[f"G{l + 1}"], self.dfr[l])
            f["dr"][l][q.blk] = self._mul(pop.zr, self.dfr[l][:, q.blk, :])
            self._put(f"Y{l}", r.pre, q.blk, self._avg(f["dph"][l][r.pre], pop.r[:, q.blk])
                      + self._avg(pop.ph[:, r.pre], f["dr"][l][q.blk]))
            md.ident[l + 1].row_b(k, self._rhs(l + 1, r.pre, q.blk), self.da[l + 1], self.dbt[l + 1])
            db = self.dbt[l + 1].mT  # dB^l (c, n_g, n)
            dd_[:, :, r.past] += lay.d_row(t[f"G{l + 1}"], md.delta, k)
            dd_ = dd_ + db[:, q.blk, r.pre]
        dz = self._mul(pop.ph[:, r.pre], dd_) + self._couple(md.dw[l][q.blk, r.pre], f["dph"][l][r.pre])
        if l <= L - 1:
            dz = dz + f["dr"][l][q.blk]
        dg = dz if self.linear else self.b_t[l][q.blk, None, :] * self.dh[l] + self.a_t[l][q.blk, None, :] * dz
        f["dg"][l][q.blk] = dg
        dgl = f["dg"][l]
        val = self._avg(dg, pop.g[:, q.pre]) + self._avg(pop.g[:, q.blk], dgl[q.pre])
        _sym_fill(t[f"G{l}"], q, val.to(md.dt) + self.xi[f"G{l}"][:, q.blk, q.pre])
        if l >= 2:
            self._put(f"X{l}", r.pre, q.blk, self._avg(f["du"][l][r.pre], pop.g[:, q.blk])
                      + self._avg(pop.u[:, r.pre], dg))
