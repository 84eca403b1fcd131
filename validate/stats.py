"""The statistics behind every verdict (docs/design.md section 5).

Finite-width facts used (docs/theory.md section 6): order parameters of a width-N network fluctuate
by O(N^{-1/2}) around the DMFT, so per-seed errors shrink like N^{-1/2}; ensemble means carry an
O(1/N) bias, so the ensemble mean extrapolates linearly in 1/N to the infinite-width value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats as sps

from .frame import Verdict

#: Default two-sided critical value (about 95 %; one-sided 97.5 %).
Z_DEFAULT = 2.0


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

    rho2:     ``(|r|^2 - E|noise|^2) / |ref|^2``: the squared relative norm with the expected seed
              noise subtracted, so a correct theory gives a value near 0 (either sign), not the
              noise level.
    rho2_se:  standard error of rho2 (Gaussian-noise formula, see extrapolated_residual).
    estimate: ``sqrt(max(rho2, 0))``, the relative residual; lo, hi: the bounds
              ``ssqrt(rho2 -+ z rho2_se)`` (``ssqrt(v) = sign(v) sqrt|v|``), for ``z`` as given,
              widened by the theory's relative Monte Carlo error.
    stderr:   ``(hi - lo) / (2 z)``, an effective standard error on the estimate's scale.
    raw:      ``|r| / |ref|`` before the noise correction; noise: ``sqrt(E|noise|^2) / |ref|``.
    """

    rho2: float
    rho2_se: float
    estimate: float
    lo: float
    hi: float
    stderr: float
    raw: float
    noise: float


def ssqrt(v):
    return float(np.sign(v) * np.sqrt(abs(v)))


def _tr_sq(a: torch.Tensor) -> float:
    """Unbiased ``tr(Sigma^2)`` from ``a`` (S, M) with ``Sigma_hat = a^T a``, a = centred / sqrt(S-1)."""
    n = a.shape[0] - 1
    gram = a @ a.T
    t2, t1 = float((gram**2).sum()), float(torch.trace(gram))
    if n < 2:
        return t2
    return max(n * n / ((n - 1) * (n + 2)) * (t2 - t1 * t1 / n), 0.0)


def extrapolated_residual(
    samples: list[torch.Tensor],
    widths: list[int],
    reference: torch.Tensor,
    reference_se: torch.Tensor | None = None,
    *,
    z: float = Z_DEFAULT,
) -> Residual:
    """Test statistic of the convergence check (docs/design.md section 5).

    samples[k]: (S_k, ...) per-seed observables of width ``widths[k]`` (S_k >= 2).
    reference: (...) the theory; reference_se: same shape, its Monte Carlo standard error, or
    None (exact solvers).

    With ``r = sum_N c_N m_N - ref ~ N(delta, Sigma_r)`` (independent Gaussian seed noise,
    ``Sigma_r = sum_N c_N^2 Sigma_N / S_N``),
    ``E|r|^2 = |delta|^2 + tr Sigma_r`` and ``Var|r|^2 = 2 tr Sigma_r^2 + 4 delta^T Sigma_r delta``.
    Every trace is computed from S x S Gram matrices of the centred samples, with unbiased
    estimators, so no bootstrap is needed and the result is deterministic. The theory's own
    Monte Carlo error (whose correlations are unknown) widens the bounds by ``z |se| / |ref|``
    on each side, by the triangle inequality, rather than being subtracted.
    """
    ws = np.asarray(widths, dtype=float)
    counts = np.array([s.shape[0] for s in samples], dtype=float)
    c = intercept_weights(ws, counts)
    ref = reference.reshape(-1).to(torch.float64)
    ref2 = float((ref**2).sum()) or 1e-300
    xs = [s.reshape(s.shape[0], -1).to(torch.float64) for s in samples]
    means = [x.mean(0) for x in xs]
    r = sum(float(ck) * m for ck, m in zip(c, means)) - ref
    A = [(x - m) / (x.shape[0] - 1) ** 0.5 for x, m in zip(xs, means)]  # Sigma_hat = A^T A
    B = [float(ck) / sk**0.5 * a for ck, sk, a in zip(c, counts, A)]  # Sigma_r = sum B^T B
    tr_r = sum(float((b**2).sum()) for b in B)
    tr_r2 = 0.0
    for i, bi in enumerate(B):
        for j, bj in enumerate(B):
            if i == j:
                tr_r2 += (c[i] ** 2 / counts[i]) ** 2 * _tr_sq(A[i])
            else:
                tr_r2 += float(((bi @ bj.T) ** 2).sum())
    quad = sum(float(((b @ r) ** 2).sum()) for b in B)
    var_noise = sum(c[i] ** 4 / counts[i] ** 2 * 2 * _tr_sq(A[i]) / max(counts[i] - 1, 1) for i in range(len(A)))
    return residual_interval(r, ref2, tr_r, 2 * tr_r2 + 4 * max(quad - tr_r2, 0.0) + var_noise, reference_se, z)


def residual_interval(r: torch.Tensor, ref2: float, tr_r: float, var_r2: float,
                      reference_se: torch.Tensor | None, z: float) -> Residual:
    """The :class:`Residual` of a residual vector ``r`` (M,) with noise trace ``tr_r`` (``E|r|^2
    = |delta|^2 + tr_r``) and ``var_r2`` the variance of ``|r|^2``, relative to ``ref2 = |ref|^2``.
    The theory's own Monte Carlo error (whose correlations are unknown) widens the bounds by
    ``z |se| / |ref|`` on each side, by the triangle inequality, rather than being subtracted."""
    r2 = float((r**2).sum())
    rho2 = (r2 - tr_r) / ref2
    se2 = var_r2**0.5 / ref2
    lo, hi = ssqrt(rho2 - z * se2), ssqrt(rho2 + z * se2)
    if reference_se is not None:  # |r| lies within |delta| -+ |eps_theory| (triangle inequality)
        th = float(reference_se.reshape(-1).to(torch.float64).norm()) / ref2**0.5
        lo, hi = lo - z * th, hi + z * th
    return Residual(rho2=rho2, rho2_se=se2, estimate=max(rho2, 0.0) ** 0.5, lo=lo, hi=hi,
                    stderr=(hi - lo) / (2 * z), raw=(r2 / ref2) ** 0.5, noise=(tr_r / ref2) ** 0.5)


def _flat(samples: torch.Tensor) -> torch.Tensor:
    return samples.reshape(samples.shape[0], -1).to(torch.float64)


@dataclass(frozen=True)
class VarianceRatio:
    """Pooled seed variance over a predicted one, ``R = sum_e s_e^2 / sum_e sigma_e^2``.

    estimate: ``log R``; lo, hi: its chi-square interval, widened by the prediction's own error;
    stderr: ``(hi - lo) / (2 z)``; ratio: ``R``; dof: the interval's degrees of freedom.
    """

    ratio: float
    estimate: float
    lo: float
    hi: float
    stderr: float
    dof: float


def variance_ratio(samples: torch.Tensor, predicted: torch.Tensor, predicted_se: torch.Tensor | None = None,
                   *, z: float = Z_DEFAULT) -> VarianceRatio:
    """Test statistic of the ``fluctuation`` check (docs/finite_width.md section 10).

    samples: (S, ...) per-seed values (S >= 3); predicted: (...) the predicted per-seed variance
    of each entry (``N Var / N``); predicted_se: same shape, its standard error, or None (exact).

    ``sum_e s_e^2`` (``s_e^2`` the unbiased seed variance of entry e) is a weighted sum of
    chi-square variables; it is treated as ``(sum_e sigma_e^2 / nu) chi2_nu`` (Satterthwaite)
    with ``nu = 2 (sum_e s_e^2)^2 / Var(sum_e s_e^2)``, the variance measured from the seeds'
    squared distances to their mean: ``nu`` is ``S (tr C)^2 / tr C^2`` for Gaussian seeds, and
    smaller (a wider interval) for heavy-tailed ones. The interval of the true ratio is
    ``[R nu / chi2_hi(nu), R nu / chi2_lo(nu)]`` at two-sided level ``2 (1 - Phi(z))``, on the log
    scale, widened by ``z`` times the relative error of ``sum_e sigma_e^2`` (errors of the entries
    taken as fully correlated, the conservative bound).
    """
    x = _flat(samples)
    s = x.shape[0]
    if s < 3:
        raise ValueError(f"samples: need at least 3 seeds for a variance, got {s}")
    dev = x - x.mean(0)
    y = (dev**2).sum(1)  # squared distance of each seed to the mean
    emp = float(y.sum()) / (s - 1)
    pred = float(predicted.to(torch.float64).clamp(min=0).sum())
    if pred <= 0:
        ratio = np.inf if emp > 0 else 1.0
        return VarianceRatio(ratio, float(np.log(ratio)), -np.inf, np.inf, np.inf, np.nan)
    ratio = emp / pred
    var_emp = float(y.var(correction=1)) / s * (s / (s - 1)) ** 2
    dof = float(np.clip(2 * emp**2 / max(var_emp, 1e-300), 1.0, (s - 1) * x.shape[1]))
    alpha = 2.0 * sps.norm.sf(z)
    lo = np.log(ratio * dof / sps.chi2.ppf(1 - alpha / 2, dof)) if ratio > 0 else -np.inf
    hi = np.log(ratio * dof / sps.chi2.ppf(alpha / 2, dof)) if ratio > 0 else -np.inf
    if predicted_se is not None:
        rel = float(predicted_se.to(torch.float64).abs().sum()) / pred
        lo, hi = lo - z * rel, hi + z * rel
    est = float(np.log(ratio)) if ratio > 0 else -np.inf
    return VarianceRatio(float(ratio), est, float(lo), float(hi), float((hi - lo) / (2 * z)), dof)


def single_width_residual(samples: torch.Tensor, reference: torch.Tensor, predicted: torch.Tensor,
                          reference_se: torch.Tensor | None = None, *, z: float = Z_DEFAULT) -> Residual:
    """Test statistic of the ``single_width`` check: the ensemble mean of ONE width against the
    theory, with the *predicted* noise of the mean (docs/finite_width.md section 10).

    samples: (S, ...) per-seed values (S >= 3); reference: (...) the theory; predicted: (...) the
    predicted per-seed variance of each entry (``N Var / N``); reference_se: the theory's Monte
    Carlo standard error or None. Same quantities as :func:`extrapolated_residual` with
    ``r = mean - reference`` and ``Sigma_r = C / S``, where ``C`` has the predicted variances on
    its diagonal and the seeds' measured correlations between entries (the prediction gives
    variances, not every covariance): ``tr Sigma_r = sum_e sigma_e^2 / S`` exactly,
    ``tr Sigma_r^2`` and ``r^T Sigma_r r`` from the S x S Gram matrix of the standardised seeds.
    """
    x = _flat(samples)
    s = x.shape[0]
    if s < 3:
        raise ValueError(f"samples: need at least 3 seeds, got {s}")
    sig = predicted.reshape(-1).to(torch.float64).clamp(min=0).sqrt()
    ref = reference.reshape(-1).to(torch.float64)
    ref2 = float((ref**2).sum()) or 1e-300
    m = x.mean(0)
    sd = x.std(0, correction=1)
    a = torch.where(sd > 0, (x - m) / torch.where(sd > 0, sd, torch.ones_like(sd)), torch.zeros_like(x))
    a = a * sig / (s - 1) ** 0.5  # C = a^T a: measured correlations, predicted variances
    r = m - ref
    tr_r = float((sig**2).sum()) / s
    tr_r2 = _tr_sq(a) / s**2
    quad = float(((a @ r) ** 2).sum()) / s
    # the noise trace is predicted, not estimated: no term for its own sampling error
    return residual_interval(r, ref2, tr_r, 2 * tr_r2 + 4 * max(quad - tr_r2, 0.0), reference_se, z)


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
           what: str = "residual", bounds: tuple[float, float] | None = None,
           signed: bool = False) -> tuple[Verdict, str]:
    """Decision about a discrepancy ``estimate`` against a tolerance (docs/design.md section 5).

    With confidence bounds ``lo, hi = estimate -+ z stderr`` (or ``bounds``):
    fail          significantly non-zero (lo > 0) and beyond the tolerance (estimate > tol)
    pass          confidently within the tolerance: hi <= tol
    inconclusive  otherwise; the reason says whether the noise alone exceeds the tolerance.

    ``signed=True``: ``estimate`` is a signed difference (e.g. a relative difference of means)
    and the discrepancy is its magnitude. The reason then shows the signed value and its
    interval ``[lo, hi]``, so the row's estimate and its reason agree in sign. It passes when the
    whole interval lies within ``[-tol, tol]`` and fails when the interval excludes 0 and
    ``|estimate| > tol``: the same decisions as ``decide(|estimate|, stderr, tol)``.
    The reason always starts with ``what``, then ``estimate`` itself.
    """
    if not np.isfinite(estimate):
        return Verdict.FAIL, f"{what} is not finite"
    lo, hi = bounds if bounds is not None else (estimate - z * stderr, estimate + z * stderr)
    tol_txt = f"±{tolerance:.3g}" if signed else f"{tolerance:.3g}"
    txt = f"{what} {estimate:.3g} [{lo:.2g}, {hi:.2g}] vs tolerance {tol_txt}"
    size, lo_m, hi_m = estimate, lo, hi
    if signed:  # bounds of the magnitude |estimate|
        size, hi_m = abs(estimate), max(abs(lo), abs(hi))
        lo_m = min(abs(lo), abs(hi)) if lo * hi > 0 else -min(abs(lo), abs(hi))
    if lo_m > 0 and size > tolerance:
        return Verdict.FAIL, f"{txt}: significantly non-zero and beyond tolerance"
    if hi_m <= tolerance:
        return Verdict.PASS, f"{txt}: within tolerance"
    if hi - lo >= 2 * tolerance:
        return Verdict.INCONCLUSIVE, f"{txt}: tolerance below the noise; add seeds or widths"
    return Verdict.INCONCLUSIVE, f"{txt}: too close to the tolerance to decide"
