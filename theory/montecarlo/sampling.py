"""Gaussian sources for the Monte Carlo solver: one factorisation per layer and iteration.

docs/theory.md section 2: ``u^l ~ GP(0, Phi^{l-1})`` and ``r^l ~ GP(0, G^{l+1})`` jointly over all
(time, point) pairs. A covariance ``(n, n)`` is factored once by ``eigh`` with clipping of the
negative / negligible eigenvalues, ``cov ~= F F^T`` with ``F`` of shape ``(n, rank)``; a batch of
sources is ``xi @ F^T`` with ``xi ~ N(0, I)`` of shape ``(S, rank)`` (one matmul, no loop).
The two boundary cases have exact low-rank factors: ``u^1`` (``Kx`` constant in time, rank
``P_all``) and ``r^L`` (``G^{L+1} = 1``: one scalar per sample, rank one).
"""

from __future__ import annotations

import torch

#: Eigenvalues below ``CLIP * lambda_max`` are dropped from the factor.
CLIP = 1e-12


def factor_psd(cov: torch.Tensor, clip: float = CLIP) -> torch.Tensor:
    """``F`` (n, rank) with ``F F^T`` the PSD part of the symmetrised ``cov`` (eigh with clipping)."""
    sym = 0.5 * (cov + cov.T)
    lam, vec = torch.linalg.eigh(sym)
    top = lam[-1].clamp(min=0.0)
    keep = lam > clip * top
    if not bool(keep.any()):
        return torch.zeros(cov.shape[0], 1, dtype=cov.dtype, device=cov.device)
    return vec[:, keep] * lam[keep].sqrt()[None, :]


def symmetric_sqrt(cov: torch.Tensor, clip: float = CLIP) -> torch.Tensor:
    """The principal square root ``F = V sqrt(lam_+) V^T`` (n, n) of the PSD part of ``cov``.

    Unlike the eigenvector factor of :func:`factor_psd`, it is a continuous function of ``cov``
    (no sign or rotation ambiguity of eigenvectors), so nearby covariances turn the same
    standard-normal draws into nearby sources: common random numbers survive small changes of
    the kernels (``theory.montecarlo.perturbative``), and results do not hinge on round-off in ``eigh``.
    """
    sym = 0.5 * (cov + cov.T)
    lam, vec = torch.linalg.eigh(sym)
    keep = lam > clip * lam[-1].clamp(min=0.0)
    vk = vec[:, keep]
    return (vk * lam[keep].sqrt()[None, :]) @ vk.T


def psd_project(cov: torch.Tensor) -> torch.Tensor:
    """Nearest (Frobenius) PSD matrix: the symmetrised ``cov`` with negative eigenvalues set to 0.

    Control-variate estimates ``mean(X X^T - Y Y^T) + E[Y Y^T]`` are unbiased but not PSD by
    construction; the returned kernels are projected (docs/theory.md section 6: PSD kernels).
    """
    sym = 0.5 * (cov + cov.T)
    lam, vec = torch.linalg.eigh(sym)
    if bool((lam >= 0).all()):
        return sym
    out = (vec * lam.clamp(min=0.0)[None, :]) @ vec.T
    return 0.5 * (out + out.T)


def constant_in_time_factor(kx: torch.Tensor, steps_plus_one: int) -> torch.Tensor:
    """Factor of ``Kx`` repeated over all time pairs: ``(T+1) P_all x rank(Kx)``."""
    f = factor_psd(kx)
    return f.repeat(steps_plus_one, 1)


def ones_factor(n: int, dtype, device) -> torch.Tensor:
    """Factor of the all-ones covariance ``G^{L+1} = 1``: a column of ones."""
    return torch.ones(n, 1, dtype=dtype, device=device)


def draw(factor: torch.Tensor, samples: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sources (S, n), xi (S, rank))`` with ``sources = xi F^T ~ N(0, F F^T)``."""
    # float64 normals cost ~5x float32 ones on the CPU; a standard normal rounded to float32
    # (relative 6e-8) is still a standard normal far below any Monte Carlo error here
    draw_dtype = torch.float32 if factor.dtype == torch.float64 else factor.dtype
    xi = torch.randn(samples, factor.shape[1], generator=generator, dtype=draw_dtype,
                     device=factor.device).to(factor.dtype)
    return xi @ factor.T, xi
