"""Fluctuations in the lazy limit gamma0 -> 0: static random kernels (``docs/finite_width.md`` s. 6).

At ``gamma0 = 0`` the weights do not move, so every kernel keeps its value at initialisation, and
a width-N network's kernels are those of its random initial weights. Layer by layer (docs/theory.md
section 3, P_all x P_all matrices, ``Phi^0 = Kx``, ``G^{L+1} = 1``)::

    Phi^l = <phi(u) phi(u)^T>,   G^l = <(phi'(u) o r)(phi'(u) o r)^T>,
    u ~ N(0, Phi^{l-1}),  r ~ N(0, G^{l+1})  (independent; the empirical kernels of the
                                              neighbouring layers at finite width)

so ``q = (Phi^l, G^l)_l`` obeys ``q = F(q) + xi / sqrt(N)`` with ``F`` the lazy kernel maps and
``xi`` the sampling noise of N sites: ``N Cov(q) = (I - D)^{-1} kappa (I - D)^{-T}``, with ``D``
block triangular (``Phi`` upwards, ``G`` downwards). The transpose-identity corrections of the
responses vanish at first order here (they multiply averages of the zero-mean ``r``). The outputs
follow the static-kernel dynamics ``f(k+1) = f(k) + (eta/P) K Delta(k)`` with the random NTK
``K = sum_l G^{l+1} o Phi^l``, so ``df`` is linear in ``dK``.

Closed forms: for linear networks every moment is Gaussian (Wick; ``D`` is the identity along
``Phi``). Otherwise ``D`` comes from the closed-form (or quadrature) lazy pair moments of
``theory.lazy`` by central differences in the covariance entries, and the single-site fourth
moments ``kappa`` from ``samples`` Monte Carlo draws of the P_all-dimensional Gaussian.
"""

from __future__ import annotations

import time

import torch

from .interface import Solution, Status, gaussian_moments
from .result import assemble

#: Monte Carlo draws per layer for the fourth moments of nonlinear activations.
SAMPLES = 1 << 16
#: Relative step of the central differences of the pair moments.
STEP = 1e-5


def pair_maps(act, cov: torch.Tensor):
    """``(E[phi phi^T], E[phi' phi'^T])`` (P_all, P_all) for ``u ~ N(0, cov)``."""
    d = torch.diagonal(cov)
    return gaussian_moments(act, d[:, None], d[None, :], cov)


def map_jacobians(act, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Jacobians (P^2, P^2) of ``cov -> E[phi phi^T]`` and ``cov -> E[phi' phi'^T]`` (vec, row-major)
    along symmetric perturbations, by central differences (exact for linear: identity and 0)."""
    p = cov.shape[0]
    if act.is_linear:
        return torch.eye(p * p, dtype=cov.dtype), torch.zeros(p * p, p * p, dtype=cov.dtype)
    h = STEP * float(torch.diagonal(cov).abs().max())
    j_phi = torch.zeros(p * p, p * p, dtype=cov.dtype)
    j_dot = torch.zeros_like(j_phi)
    for a in range(p):
        for b in range(a, p):
            e = torch.zeros_like(cov)
            e[a, b] = e[b, a] = h
            (pp, dp), (pm, dm) = pair_maps(act, cov + e), pair_maps(act, cov - e)
            # a symmetric perturbation of entries (a, b) and (b, a) splits evenly between them
            share = 1.0 if a == b else 0.5
            for col in {a * p + b, b * p + a}:
                j_phi[:, col] = share * (pp - pm).reshape(-1) / (2 * h)
                j_dot[:, col] = share * (dp - dm).reshape(-1) / (2 * h)
    return j_phi, j_dot


def site_covariance(act, cov_u: torch.Tensor, cov_r: torch.Tensor, samples: int, seed: int):
    """``kappa`` (2 P^2, 2 P^2): covariance of ``(vec phi(u) phi(u)^T, vec g g^T)``, ``g = phi'(u) o r``.

    Linear networks: Wick's theorem. Otherwise the fourth moments of ``phi(u)``, ``phi'(u)`` from
    ``samples`` draws; those of ``r`` by Wick (exact).
    """
    p = cov_u.shape[0]
    wick = lambda a, b: torch.einsum("ac,bd->abcd", a, b) + torch.einsum("ad,bc->abcd", a, b)  # noqa: E731
    er = wick(cov_r, cov_r) + torch.einsum("ab,cd->abcd", cov_r, cov_r)  # E[r_a r_b r_c r_d]
    if act.is_linear:
        k_pp = wick(cov_u, cov_u)
        e_dd = torch.ones(p, p, p, p, dtype=cov_u.dtype)
        k_pg = torch.zeros_like(k_pp)
        mean_dd = torch.ones(p, p, dtype=cov_u.dtype)
    else:
        gen = torch.Generator().manual_seed(seed)
        lam, vec = torch.linalg.eigh(cov_u)
        f = vec * lam.clamp(min=0.0).sqrt()
        u = torch.randn(samples, p, generator=gen, dtype=cov_u.dtype) @ f.T
        ph, dp = act.phi(u), act.dphi(u)
        pp = (ph[:, :, None] * ph[:, None, :]).reshape(samples, -1)
        dd = (dp[:, :, None] * dp[:, None, :]).reshape(samples, -1)
        k_pp = torch.cov(pp.T, correction=1).reshape(p, p, p, p)
        e_dd = (dd.T @ dd / samples).reshape(p, p, p, p)
        mean_dd = dd.mean(0).reshape(p, p)
        # Cov(phi_a phi_b, g_c g_d) = Cov(phi_a phi_b, phi'_c phi'_d) G_cd (r independent of u)
        k_pg = torch.cov(torch.cat([pp, dd], 1).T, correction=1)[: p * p, p * p :].reshape(p, p, p, p)
        k_pg = k_pg * cov_r[None, None]
    mean_g = mean_dd * cov_r
    k_gg = e_dd * er - torch.einsum("ab,cd->abcd", mean_g, mean_g)
    n2 = p * p
    out = torch.zeros(2 * n2, 2 * n2, dtype=cov_u.dtype)
    out[:n2, :n2] = k_pp.reshape(n2, n2)
    out[:n2, n2:] = k_pg.reshape(n2, n2)
    out[n2:, :n2] = k_pg.reshape(n2, n2).T
    out[n2:, n2:] = k_gg.reshape(n2, n2)
    return out


def kernel_covariance(act, kx: torch.Tensor, depth: int, samples: int, seed: int):
    """``(N Cov(q), phis, dots, gs)`` for ``q = (vec Phi^1, vec G^1, ..., vec Phi^L, vec G^L)``."""
    p, L = kx.shape[0], depth
    n2 = p * p
    phis, dots, prev = [], [], kx
    for _ in range(L):
        ph, dt = pair_maps(act, prev)
        phis.append(0.5 * (ph + ph.T))
        dots.append(0.5 * (dt + dt.T))
        prev = phis[-1]
    gs = [None] * (L + 1)
    gs[L] = torch.ones_like(kx)
    for l in range(L - 1, -1, -1):
        gs[l] = gs[l + 1] * dots[l]
    dim = 2 * L * n2
    dmat = torch.zeros(dim, dim, dtype=kx.dtype)
    kappa = torch.zeros_like(dmat)
    iphi = lambda l: slice(2 * l * n2, (2 * l + 1) * n2)  # noqa: E731  layer l = 0..L-1 (Phi^{l+1})
    ig = lambda l: slice((2 * l + 1) * n2, (2 * l + 2) * n2)  # noqa: E731
    for l in range(L):
        cov_u = kx if l == 0 else phis[l - 1]
        cov_r = gs[l + 1]
        if l:
            j_phi, j_dot = map_jacobians(act, cov_u)
            dmat[iphi(l), iphi(l - 1)] = j_phi
            dmat[ig(l), iphi(l - 1)] = cov_r.reshape(-1, 1) * j_dot
        if l < L - 1:
            dmat[ig(l), ig(l + 1)] = torch.diag(dots[l].reshape(-1))
        blk = slice(2 * l * n2, (2 * l + 2) * n2)
        kappa[blk, blk] = site_covariance(act, cov_u, cov_r, samples, seed + 101 * l)
    prop = torch.linalg.solve(torch.eye(dim, dtype=kx.dtype) - dmat, torch.eye(dim, dtype=kx.dtype))
    return prop @ kappa @ prop.T, phis, gs, (iphi, ig)


def lazy_fluctuations(sol: Solution, *, update: str, samples: int | None, population: int,
                      tol: float, max_iterations: int, chunk: int, seed: int):
    """``theory.fluctuations`` in the lazy limit (``update``, ``population``, ``tol`` unused)."""
    t0 = time.perf_counter()
    pr = sol.problem
    act, L, p, pa, m = pr.activation, pr.depth, pr.n_train, pr.n_points, pr.steps + 1
    kx = pr.kx
    n_samp = SAMPLES if samples is None else samples
    sig, phis, gs, (iphi, ig) = kernel_covariance(act, kx, L, n_samp, seed)
    n2 = pa * pa
    # NTK K = G^1 o Kx + sum_{l=1}^{L-1} G^{l+1} o Phi^l + Phi^L, linear in q
    jk = torch.zeros(n2, sig.shape[0], dtype=kx.dtype)
    jk[:, ig(0)] = torch.diag(kx.reshape(-1))
    for l in range(L):
        jk[:, iphi(l)] = torch.diag(gs[l + 1].reshape(-1))
        if l < L - 1:
            jk[:, ig(l + 1)] = torch.diag(phis[l].reshape(-1))
    cov_k = jk @ sig @ jk.T
    jf = output_jacobian(sol, m, p, pa)  # (m, pa, n2)
    jl = (2.0 / p) * torch.einsum("ka,kac->kc", sol.f_train - pr.y_train, jf[:, :p])
    var_f = torch.einsum("kac,cd,kad->ka", jf, cov_k, jf)
    diag = lambda q: torch.diagonal(q).reshape(pa, pa).expand(m, pa, pa)  # noqa: E731
    var = {"f": var_f, "loss": torch.einsum("kc,cd,kd->k", jl, cov_k, jl), "ntk": diag(cov_k),
           "phi": [diag(sig[iphi(l), iphi(l)]) for l in range(L)],
           "g": [diag(sig[ig(l), ig(l)]) for l in range(L)]}
    exact = act.is_linear
    info = {"method": "lazy", "noise": "exact" if exact else "sampled",
            "samples": 0 if exact else n_samp, "timings": {"lazy": time.perf_counter() - t0}}
    return assemble(sol, "lazy", var, jl @ cov_k @ jl.T, status=Status.EXACT if exact else Status.CONVERGED,
                    iterations=0, residual=0.0, info=info)


def output_jacobian(sol: Solution, m: int, p: int, pa: int) -> torch.Tensor:
    """``d f~(k, mu) / d vec K`` (m, P_all, P_all^2) of the static-kernel dynamics
    ``f(k+1) = f(k) + (eta/P) K[:, train] Delta(k)`` at the solution's (lazy) NTK and errors."""
    pr = sol.problem
    k0 = sol.ntk[0]
    delta = pr.y_train - sol.f_train  # (m, P)
    step = pr.eta / p
    basis = torch.eye(pa * pa, dtype=k0.dtype).reshape(pa * pa, pa, pa)  # directions dK
    df = torch.zeros(pa * pa, m, pa, dtype=k0.dtype)
    for k in range(m - 1):
        dd = -df[:, k, :p]
        df[:, k + 1] = df[:, k] + step * (basis[:, :, :p] @ delta[k] + dd @ k0[:, :p].T)
    return df.permute(1, 2, 0)
