"""Output dynamics for the Monte Carlo solver, marched in time (docs/theory.md section 2).

The exact discrete-time update telescopes into the network output of the single-site process::

    f~_mu(k) = (1/gamma0) < r^L phi(h^L(k, mu)) >  +  (eta/P) sum_{s<k} sum_nu Phi^L_{mu nu}(k, s) Delta_nu(s)

(``z^L(k) = r^L + (eta gamma0 / P) sum_{s<k} Delta(s) phi(h^L(s))``; ``f~(0) = 0`` exactly because
``h^L(0) = u^L(0)`` is independent of ``r^L``). By Stein's lemma for the scalar ``r^L ~ N(0, 1)``,
``< r^L phi(h^L) > = < d phi(h^L) / d r^L >``, a one-direction pathwise derivative over all samples.

Iterating whole trajectories on this formula is a Picard iteration on a Volterra equation whose
kernel is the NTK: it diverges in practice. Instead ``Delta`` is marched in time with the
first-order sensitivity as a preconditioner (a defect correction): if ``f_ref`` is the output of
the samples, which were generated with ``Delta_ref``,

    f~(k) = f_ref(k) + (eta/P) sum_{s<k} K(s)[:, train] (Delta(s) - Delta_ref(s))

is explicit in time, exact at the fixed point (``Delta = Delta_ref``), and leaves only the
(small) difference between the true sensitivity and the NTK to the outer iteration.
"""

from __future__ import annotations

import torch


def ntk_over_time(phis, gs, kx: torch.Tensor, t1: int, p_all: int, *, top: int | None = None) -> torch.Tensor:
    """``K(k) = sum_{l=0..top} G^{l+1}(k,k) o Phi^l(k,k)`` (T+1, P_all, P_all); phis/gs (n, n).

    ``top`` defaults to ``L`` (the NTK); ``top = L - 2`` gives the lower layers' part that GIA's
    exact update adds first-order (see ``theory.linear``)."""
    def diag_blocks(m):
        return torch.diagonal(m.reshape(t1, p_all, t1, p_all), dim1=0, dim2=2).permute(2, 0, 1)

    depth = len(phis)
    top = depth if top is None else top
    k = diag_blocks(gs[0]) * kx[None]
    for l in range(top):
        g_above = diag_blocks(gs[l + 1]) if l + 1 < depth else 1.0
        k = k + g_above * diag_blocks(phis[l])
    return k


def first_order_output(ntk: torch.Tensor, delta: torch.Tensor, eta: float) -> torch.Tensor:
    """``(eta/P) sum_{s<k} K(s)[:, train] Delta(s)`` (T+1, P_all) for K (T+1, P_all, P_all)."""
    p = delta.shape[1]
    steps = (eta / p) * torch.einsum("kab,kb->ka", ntk[:, :, :p], delta)
    return torch.cat([torch.zeros_like(steps[:1]), torch.cumsum(steps, 0)[:-1]])


def sample_output(a_out: torch.Tensor, phi_top: torch.Tensor, delta_used: torch.Tensor,
                  gamma0: float, eta: float, t1: int, p_all: int, p: int) -> torch.Tensor:
    """Network output of the samples (T+1, P_all) from ``a_out = <d phi(h^L) / d r^L>`` (T+1, P_all),
    ``Phi^L`` (n, n) and the ``Delta`` (T+1, P) the samples were generated with."""
    ph = phi_top.reshape(t1, p_all, t1, p_all)[:, :, :, :p]  # (k, mu, s, nu)
    tk = torch.arange(t1, device=a_out.device)
    mask = (tk[None, :] < tk[:, None]).to(a_out.dtype)  # s < k
    drive = torch.einsum("kmsn,sn,ks->km", ph, delta_used, mask)
    return a_out / gamma0 + (eta / p) * drive


def march(y: torch.Tensor, ntk: torch.Tensor, eta: float, *, f_ref: torch.Tensor | None = None,
          delta_ref: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """March the outputs in time. Returns ``(delta (T+1, P), f (T+1, P_all))``.

    Without ``f_ref``: the first-order update ``f(k+1) = f(k) + eta/P K(k)[:, train] Delta(k)``.
    With ``f_ref``, ``delta_ref``: the defect-corrected exact update of the module docstring.
    """
    t1, p_all, _ = ntk.shape
    p = y.shape[0]
    f = torch.zeros(t1, p_all, dtype=ntk.dtype, device=ntk.device)
    delta = torch.zeros(t1, p, dtype=ntk.dtype, device=ntk.device)
    delta[0] = y
    for k in range(t1 - 1):
        if f_ref is None:
            step = (eta / p) * ntk[k, :, :p] @ delta[k]
        else:
            step = f_ref[k + 1] - f_ref[k] + (eta / p) * ntk[k, :, :p] @ (delta[k] - delta_ref[k])
        f[k + 1] = f[k] + step
        delta[k + 1] = y - f[k + 1, :p]
    return delta, f
