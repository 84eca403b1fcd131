"""Independent finite-width references for ``theory.fluctuations`` (test helpers, no theory code).

Two-layer linear network on whitened data (``Kx = I`` over all points). With
``f = w . h / (gamma0 N)``, ``h_mu = W0 x_mu / sqrt(D)`` and gradient descent with step eta
(docs/theory.md section 1), one step is

    w(k+1)   = w(k)   + (eta gamma0 / P) sum_{mu < P} Delta_mu(k) h_mu(k)
    h_nu(k+1) = h_nu(k) + (eta gamma0 / P) (Kx Delta(k))_nu w(k) = h_nu(k) + (eta gamma0/P) Delta_nu(k) w(k)

(zero for test points, which are orthogonal to the training points). Every vector stays in the
span of ``b_0 = w(0)``, ``b_{1+mu} = h_mu(0)``: write ``w = B c_w``, ``h_mu = B c_mu``. Outputs
and kernels are bilinear in the coefficients with the Gram matrix ``Gamma = B^T B / N``, so a
width-N network is a deterministic function of ``Gamma``. The rows of ``B`` are i.i.d.
``N(0, I)`` (``w(0)`` and ``W0 x / sqrt(D)`` with whitened inputs), so ``N Gamma`` is
Wishart(N, I): sampling it (Bartlett decomposition) gives the exact finite-N distribution at any N
without training width-N networks.
"""

from __future__ import annotations

import math

import torch


def whitened_inputs(n_points: int, dim: int, seed: int = 0) -> torch.Tensor:
    """(n_points, dim) inputs with ``X X^T / dim = I`` (orthonormal rows scaled by sqrt(dim))."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, n_points, generator=g, dtype=torch.float64))
    return math.sqrt(dim) * q.T


def wishart_gram(width: int, dim: int, samples: int, seed: int = 0) -> torch.Tensor:
    """(samples, dim, dim) draws of ``Gamma = B^T B / width`` with B (width, dim) standard normal
    (Bartlett: ``N Gamma = L L^T``, ``L_ii^2 ~ chi2(width - i)``, ``L_ij ~ N(0, 1)`` below)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.tril(torch.randn(samples, dim, dim, generator=g, dtype=torch.float64), -1)
    df = torch.tensor([width - i for i in range(dim)], dtype=torch.float64)
    chi2 = torch.distributions.Chi2(df)
    torch.manual_seed(seed + 1)
    diag = chi2.sample((samples,)).sqrt()
    low = low + torch.diag_embed(diag)
    return low @ low.mT / width


def network_gram(w0: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``Gamma`` (S, R, R) of actual initial weights w0 (S, N, D), w (S, N) on inputs x (P_all, D)."""
    h = torch.matmul(x, w0.mT) / math.sqrt(x.shape[1])  # (S, P_all, N)
    b = torch.cat([w[:, None, :], h], 1)  # (S, R, N)
    return b @ b.mT / w.shape[1]


def two_layer_from_gram(gram: torch.Tensor, y: torch.Tensor, n_test: int, *, gamma0: float,
                        eta: float, steps: int) -> dict[str, torch.Tensor]:
    """Exact trajectories of whitened two-layer linear networks from their Gram matrices.

    gram: (S, R, R), R = P_all + 1. Returns loss (S, T+1), f (S, T+1, P_all) centred outputs,
    ntk (S, T+1, P_all, P_all), phi (S, T+1, P_all, P_all) = Phi^1(t,t), g (S, T+1) = G^1(t,t).
    """
    s_count, r, _ = gram.shape
    p = y.shape[0]
    pa = r - 1
    eye = torch.eye(r, dtype=gram.dtype)
    cw = eye[0].expand(s_count, r).clone()
    ch = eye[1:].expand(s_count, pa, r).clone()
    c = eta * gamma0 / p
    out = {k: [] for k in ("loss", "f", "ntk", "phi", "g")}
    f0 = None
    for _ in range(steps + 1):
        gh = ch @ gram  # (S, Pa, R)
        f = torch.einsum("sr,sar->sa", cw, gh) / gamma0
        f0 = f if f0 is None else f0
        ft = f - f0
        phi = gh @ ch.mT
        g = torch.einsum("sa,sab,sb->s", cw, gram, cw)
        out["f"].append(ft)
        out["loss"].append(((ft[:, :p] - y) ** 2).mean(-1))
        out["phi"].append(phi)
        out["g"].append(g)
        out["ntk"].append(g[:, None, None] * torch.eye(pa, dtype=gram.dtype) + phi)
        delta = y - ft[:, :p]
        new_cw = cw + c * torch.einsum("sa,sar->sr", delta, ch[:, :p])
        ch = ch.clone()
        ch[:, :p] = ch[:, :p] + c * delta[:, :, None] * cw[:, None, :]
        cw = new_cw
    return {k: torch.stack(v, 1) for k, v in out.items()}
