"""A tiny stand-in trainer for MLPs in the project's conventions (THEORY.md section 1).

Only for the validate tests, until ``simulate.train`` lands (and afterwards as an independent
cross-check). Batched over seeds; records the Trajectories fields with a leading seed axis.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch


def train_standin(problem, width, seeds=4, *, seed=0, device="cpu", **_):
    S, N, L = int(seeds), int(width), problem.depth
    X = problem.x_all
    Pa, D, P = X.shape[0], X.shape[1], problem.n_train
    y = problem.y_train
    act = problem.activation
    g0, eta, T = problem.gamma0, problem.eta, problem.steps
    gen = torch.Generator().manual_seed(1_000_003 * seed + width)
    rnd = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    W = [rnd(S, N, D)] + [rnd(S, N, N) for _ in range(L - 1)]
    w = rnd(S, N)
    params = W + [w]
    for p in params:
        p.requires_grad_(True)
    lr = eta * g0**2 * N

    def forward():
        hs = [X @ W[0].transpose(1, 2) / D**0.5]  # (S, Pa, N)
        for Wl in W[1:]:
            hs.append(act.phi(hs[-1]) @ Wl.transpose(1, 2) / N**0.5)
        f = (act.phi(hs[-1]) * w[:, None, :]).sum(-1) / (g0 * N)
        return hs, f

    with torch.no_grad():
        f0 = forward()[1]
    hist_phi = [[] for _ in range(L)]
    hist_g = [[] for _ in range(L)]
    losses, fs, ntks = [], [], []
    kx = X @ X.T / D
    for k in range(T + 1):
        hs, f = forward()
        ft = f - f0
        with torch.no_grad():
            # backward fields g^l = phi'(h^l) z^l, z^L = w, z^l = W^l^T g^{l+1} / sqrt(N)
            gs = [None] * L
            z = w[:, None, :].expand(S, Pa, N)
            for l in reversed(range(L)):
                gs[l] = act.dphi(hs[l]) * z
                if l > 0:
                    z = gs[l] @ W[l] / N**0.5
            phis = [act.phi(h) for h in hs]
            ntk = gs[0] @ gs[0].transpose(1, 2) / N * kx
            for l in range(L):
                gk = gs[l + 1] @ gs[l + 1].transpose(1, 2) / N if l + 1 < L else 1.0
                ntk = ntk + gk * (phis[l] @ phis[l].transpose(1, 2) / N)
            for l in range(L):
                hist_phi[l].append(phis[l].clone())
                hist_g[l].append(gs[l].clone())
            losses.append(((ft[:, :P] - y) ** 2).mean(-1))
            fs.append(ft.clone())
            ntks.append(ntk)
        if k == T:
            break
        loss = 0.5 * ((ft[:, :P] - y) ** 2).sum() / P
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, gr in zip(params, grads):
                p -= lr * gr
    two_time = lambda hist: torch.einsum("tsan,usbn->staub", torch.stack(hist), torch.stack(hist)) / N  # noqa: E731
    f = torch.stack(fs, 1)
    return SimpleNamespace(
        problem=problem, width=N, t=problem.times, loss=torch.stack(losses, 1),
        f_train=f[:, :, :P], f_test=f[:, :, P:] if problem.n_test else None,
        ntk=torch.stack(ntks, 1),
        phi=tuple(two_time(h) for h in hist_phi), g=tuple(two_time(h) for h in hist_g),
        diverged=torch.zeros(S, dtype=torch.bool), diverged_step=torch.full((S,), -1),
    )
