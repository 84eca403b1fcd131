"""The statistics behind every verdict (DESIGN.md "Statistics, not eyeballing").

Finite-width facts used (THEORY.md section 6): order parameters of a width-N network fluctuate
by O(N^{-1/2}) around the DMFT, so per-seed errors shrink like N^{-1/2}; ensemble means carry an
O(1/N) bias, so the ensemble mean extrapolates linearly in 1/N to the infinite-width value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .frame import Verdict

#: Default two-sided critical value (about 95 %; one-sided 97.5 %).
Z_DEFAULT = 2.0
#: Default number of bootstrap resamples (over seeds, within each width).
N_BOOT = 300


def intercept_weights(widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Weights ``c`` with ``sum c = 1`` and ``sum c / N = 0``: the weighted least-squares intercept.

    Model ``m_N = a + b / N`` fitted with weights ``N * S_N`` (the variance of a width-N ensemble
    mean of ``S_N`` seeds is proportional to ``1 / (N S_N)``). The intercept is ``sum_N c_N m_N``.
    With a single width there is nothing to extrapolate: ``c = [1]``.
    """
    widths = np.asarray(widths, dtype=float)
    counts = np.asarray(counts, dtype=float)
    if len(widths) == 1:
        return np.ones(1)
    X = np.stack([np.ones_like(widths), 1.0 / widths], axis=1)
    W = widths * counts
    A = X.T @ (W[:, None] * X)
    return (np.linalg.solve(A, X.T * W))[0]


@dataclass(frozen=True)
class Residual:
    """Relative size of the extrapolated (N -> infinity) residual ``r = lim m_N - reference``.

    estimate: ``sqrt(max(0, rho2))``, with ``rho2 = (|r|^2 - E|noise|^2) / |ref|^2``, the squared
              relative norm with the seed noise (and the theory's Monte Carlo noise) subtracted,
              so that a correct theory gives an estimate near 0, not near the noise level.
    stderr:   bootstrap standard error (seeds resampled within widths), theory error in quadrature.
    raw:      ``|r| / |ref|`` before the noise correction; noise: ``sqrt(E|noise|^2) / |ref|``.
    """

    estimate: float
    stderr: float
    raw: float
    noise: float
    signed: float  # sign(rho2) * sqrt(|rho2|): unbiased-ish, may be negative


def _rho2(means, varsum, counts, c, ref, ref_se2, ref2):
    """Vectorised over a leading bootstrap axis: means (B, k, M), varsum (B, k)."""
    r = torch.einsum("k,bkm->bm", c, means) - ref
    noise = (c**2 * varsum / counts).sum(-1) + ref_se2
    return ((r**2).sum(-1) - noise) / ref2, (r**2).sum(-1) / ref2, noise / ref2


def extrapolated_residual(
    samples: list[torch.Tensor],
    widths: list[int],
    reference: torch.Tensor,
    reference_se: torch.Tensor | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Residual:
    """Test statistic of the convergence check (DESIGN.md).

    samples[k]: (S_k, M) per-seed observables of width ``widths[k]`` (S_k >= 2).
    reference: (M,) the theory; reference_se: (M,) its Monte Carlo standard error, or None (exact).
    """
    ws = np.asarray(widths, dtype=float)
    counts_np = np.array([s.shape[0] for s in samples], dtype=float)
    c = torch.as_tensor(intercept_weights(ws, counts_np), dtype=torch.float64)
    counts = torch.as_tensor(counts_np, dtype=torch.float64)
    ref = reference.reshape(-1).to(torch.float64)
    ref2 = (ref**2).sum().clamp_min(1e-300)
    ref_se2 = 0.0 if reference_se is None else float((reference_se.reshape(-1) ** 2).sum())
    xs = [s.reshape(s.shape[0], -1).to(torch.float64) for s in samples]

    def stats(weights):  # weights[k]: (B, S_k) resampling counts
        means = torch.stack([w @ x / x.shape[0] for w, x in zip(weights, xs)], dim=1)
        second = torch.stack([(w @ x**2).sum(-1) / x.shape[0] for w, x in zip(weights, xs)], dim=1)
        varsum = (second - (means**2).sum(-1)) * counts / (counts - 1)
        return _rho2(means, varsum, counts, c, ref, ref_se2, ref2)

    rho2, raw2, noise2 = (v[0].item() for v in stats([torch.ones(1, x.shape[0], dtype=torch.float64) for x in xs]))
    gen = torch.Generator().manual_seed(seed)
    boots = []
    for x in xs:
        idx = torch.randint(0, x.shape[0], (n_boot, x.shape[0]), generator=gen)
        boots.append(torch.zeros(n_boot, x.shape[0], dtype=torch.float64).scatter_add_(
            1, idx, torch.ones_like(idx, dtype=torch.float64)))
    b_rho2 = stats(boots)[0]
    signed = lambda v: torch.sign(v) * v.abs().sqrt()  # noqa: E731
    se_boot = float(signed(b_rho2).std())
    th_rel = (ref_se2 / float(ref2)) ** 0.5
    return Residual(
        estimate=max(rho2, 0.0) ** 0.5,
        stderr=float(np.hypot(se_boot, th_rel)),
        raw=raw2**0.5,
        noise=max(noise2, 0.0) ** 0.5,
        signed=float(signed(torch.tensor(rho2))),
    )


@dataclass(frozen=True)
class RateFit:
    """Least-squares fit ``log e = intercept + slope * log N`` over all (width, seed) errors."""

    slope: float
    intercept: float
    stderr: float
    n: int


def loglog_rate(widths: np.ndarray, errors: np.ndarray) -> RateFit:
    """Fit per-seed errors against width on log-log axes. widths, errors: (n,) matched pairs."""
    w = np.log(np.asarray(widths, dtype=float))
    e = np.log(np.clip(np.asarray(errors, dtype=float), 1e-300, None))
    n = len(w)
    X = np.stack([np.ones(n), w], axis=1)
    coef, *_ = np.linalg.lstsq(X, e, rcond=None)
    dof = n - 2
    if dof <= 0 or np.ptp(w) == 0:
        return RateFit(float(coef[1]) if n > 1 else np.nan, float(coef[0]), np.inf, n)
    s2 = float(((e - X @ coef) ** 2).sum() / dof)
    cov = s2 * np.linalg.inv(X.T @ X)
    return RateFit(float(coef[1]), float(coef[0]), float(np.sqrt(cov[1, 1])), n)


def mean_se(x: torch.Tensor | np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean of 1-D samples (se = inf with fewer than 2)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float(x.mean()) if len(x) else np.nan, np.inf
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))


def relative_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(mean a - mean b) / |mean b|`` and its standard error (independent samples, delta method)."""
    ma, sa = mean_se(a)
    mb, sb = mean_se(b)
    scale = abs(mb) if mb != 0 else 1.0
    d = (ma - mb) / scale
    se = np.hypot(sa, sb * abs(ma) / scale) / scale if np.isfinite(sa + sb) else np.inf
    return float(d), float(se)


def decide(estimate: float, stderr: float, tolerance: float, z: float = Z_DEFAULT,
           what: str = "residual") -> tuple[Verdict, str]:
    """Equivalence-style decision about a non-negative discrepancy ``estimate`` (THEORY, DESIGN).

    fail          the discrepancy is significantly beyond the tolerance: estimate - z se > tol
    pass          it is confidently within: estimate + z se <= tol
    inconclusive  otherwise; the reason says whether the noise alone exceeds the tolerance.
    """
    if not np.isfinite(estimate):
        return Verdict.FAIL, f"{what} is not finite"
    lo, hi = estimate - z * stderr, estimate + z * stderr
    txt = f"{what} {estimate:.3g} ± {stderr:.2g} (z={z:g}) vs tolerance {tolerance:.3g}"
    if lo > tolerance:
        return Verdict.FAIL, f"{txt}: significantly beyond tolerance"
    if hi <= tolerance:
        return Verdict.PASS, f"{txt}: within tolerance"
    if z * stderr >= tolerance:
        return Verdict.INCONCLUSIVE, f"{txt}: tolerance below the noise (z·se = {z * stderr:.2g}); add seeds or widths"
    return Verdict.INCONCLUSIVE, f"{txt}: too close to the tolerance to decide"
