"""Preactivation densities (Fig. 1): theory field samples against the neurons of a trained network.

Theory: draw the sources of docs/theory.md section 2 from the solved kernels and step the fields
forward with the solved responses (``theory.montecarlo.solve_fields``), so ``h^l(t, mu)`` is a draw
of the single-site process. Networks: train with ``simulate.mlp`` (same conventions) and read the
preactivations of every neuron. At infinite width the neurons of one layer are i.i.d. draws of
that process, so the two samples must agree in law (two-sample Kolmogorov-Smirnov test).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def theory_fields(sol, samples: int, seed: int = 0) -> list[torch.Tensor]:
    """Samples of ``h^l`` per layer, each (samples, T+1, P_all), from a DMFT ``Solution``."""
    from theory.montecarlo import constant_in_time_factor, coupling, draw, factor_psd, ones_factor, solve_fields

    pr = sol.problem
    t1, pa, p, depth = pr.steps + 1, pr.n_points, pr.n_train, pr.depth
    n = t1 * pa
    kw = dict(dtype=torch.float64)
    flat = lambda m: m.to(**kw).reshape(n, n)  # noqa: E731
    delta = torch.zeros(t1, pa, **kw)
    delta[:, :p] = pr.y_train.to(**kw) - sol.f_train.to(**kw)
    delta = delta.reshape(n)
    kx = pr.kx.to(**kw)
    scale = pr.eta * pr.gamma0 / p
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for l in range(1, depth + 1):
        if l == 1:
            fu, cov_u = constant_in_time_factor(kx, t1), kx.repeat(t1, t1)
        else:
            cov_u = flat(sol.phi[l - 2])
            fu = factor_psd(cov_u)
        if l == depth:
            fr, cov_r = ones_factor(n, torch.float64, "cpu"), torch.ones(n, n, **kw)
        else:
            cov_r = flat(sol.g[l])
            fr = factor_psd(cov_r)
        a = flat(sol.response_a[l - 2]) if (l >= 2 and sol.response_a is not None) else None
        b = flat(sol.response_b[l - 1]) if (l <= depth - 1 and sol.response_b is not None) else None
        u, _ = draw(fu, samples, gen)
        r, _ = draw(fr, samples, gen)
        h, _, _, _ = solve_fields(u, r, coupling(a, cov_u, delta, scale, pa),
                                  coupling(b, cov_r, delta, scale, pa), pr.activation, pa)
        out.append(h.reshape(samples, t1, pa))
    return out


def network_fields(problem, width: int, seeds: int, seed: int = 0) -> list[torch.Tensor]:
    """Preactivations per layer at t = 0 and t = T: each (2, seeds, P_all, width).

    Full-batch gradient descent with centred outputs, docs/theory.md section 1 (``simulate.mlp``).
    """
    from simulate.mlp import forward, init_network, sgd_step

    pr = problem
    x = torch.cat([pr.x_train, pr.x_test]) if pr.n_test else pr.x_train
    x = x.to(torch.float64)
    y = pr.y_train.to(torch.float64)
    net = init_network(pr.input_dim, width, pr.depth, list(range(seed, seed + seeds)),
                       device="cpu", dtype=torch.float64)
    c = pr.eta * pr.gamma0 / pr.n_train
    fields = forward(net, x, pr.activation, pr.gamma0)
    f0 = fields.f.clone()
    start = [h.clone() for h in fields.h]
    for _ in range(pr.steps):
        delta = y - (fields.f - f0)[:, : pr.n_train]
        sgd_step(net, fields, x[: pr.n_train], delta, c)
        fields = forward(net, x, pr.activation, pr.gamma0)
    return [torch.stack([s, e]) for s, e in zip(start, fields.h)]


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Density histogram on ``edges`` (values outside are dropped, density over all values)."""
    counts, _ = np.histogram(values, bins=edges)
    width = np.diff(edges)
    return counts / max(len(values), 1) / width


def common_edges(a: np.ndarray, b: np.ndarray, bins: int = 40) -> np.ndarray:
    lo = min(np.quantile(a, 0.002), np.quantile(b, 0.002))
    hi = max(np.quantile(a, 0.998), np.quantile(b, 0.998))
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        lo, hi = -1.0, 1.0
    return np.linspace(lo, hi, bins + 1)
