"""Embedded synthetic data: the Gaussian inputs the paper's experiments use (docs/theory.md section 7).

Lives in ``theory`` so that theory-only users and ``simulate`` share one definition.
"""

from __future__ import annotations

import torch


def gaussian_data(
    n_train: int, input_dim: int, n_test: int = 0, *, seed: int = 0, target: str = "linear"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Inputs ``x ~ N(0, I_D)`` and targets, float64.

    target="linear": ``y = beta . x / sqrt(D)`` with ``beta ~ N(0, I)``, rescaled so that the
    training targets have unit mean square; target="sign": ``y = sign(beta . x)``.
    Returns ``(x_train (P, D), y_train (P,), x_test (Q, D) or None, y_test (Q,) or None)``.
    """
    if n_train < 1 or input_dim < 1 or n_test < 0:
        raise ValueError("gaussian_data: need n_train >= 1, input_dim >= 1, n_test >= 0")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, input_dim, generator=gen, dtype=torch.float64)
    beta = torch.randn(input_dim, generator=gen, dtype=torch.float64)
    y = x @ beta / input_dim**0.5
    if target == "sign":
        y = torch.sign(y)
    elif target == "linear":
        y = y / y[:n_train].pow(2).mean().sqrt()
    else:
        raise ValueError(f"target: unknown value {target!r}; valid values are ['linear', 'sign']")
    if n_test:
        return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    return x, y, None, None
