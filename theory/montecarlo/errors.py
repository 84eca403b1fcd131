"""Monte Carlo standard errors of the solver's returned observables (docs/theory.md section 2).

Two sources, both relative Frobenius errors (``|se| / |estimate|``, scalars, the convention
``validate.checks.common.theory_stderr`` reads):

* split halves of one iteration's samples (``theory.montecarlo.estimators.second_moment``): the noise of
  ONE kernel estimate given the previous state; it misses the noise carried in through the
  fixed-point map (layer l + 1 sees the noisy Phi^l, every layer the noisy outputs);
* the spread of the raw iterates after convergence (the running-mean window): at the fixed
  point each iterate is the map applied to a noisy state plus fresh noise, so the spread holds
  BOTH parts. The returned estimate is the mean of ``m`` iterates: ``se = sd / sqrt(m)``.

The reported error is the larger of the two (the window has only a few iterates, so either can
under-shoot by chance; taking the larger keeps the report from being optimistic).
"""

from __future__ import annotations

import math

import torch


class IterateSpread:
    """Running mean and pooled (Frobenius) spread of a named set of tensors over iterates
    (Welford's update; one mean tensor per name, the spread as a scalar)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: dict[str, torch.Tensor] = {}
        self.m2: dict[str, float] = {}

    def reset(self) -> None:
        self.count = 0
        self.mean, self.m2 = {}, {}

    def add(self, values: dict[str, torch.Tensor]) -> None:
        self.count += 1
        k = self.count
        for name, x in values.items():
            x = x.detach()
            if k == 1:
                self.mean[name] = x.clone()
                self.m2[name] = 0.0
                continue
            delta = x - self.mean[name]
            self.mean[name] = self.mean[name] + delta / k
            self.m2[name] += float((delta * (x - self.mean[name])).sum())

    def relative_se(self, name: str) -> float | None:
        """Relative standard error of the mean over the iterates, or None with < 2 iterates."""
        if self.count < 2 or name not in self.mean:
            return None
        sd2 = self.m2[name] / (self.count - 1)
        norm = float(self.mean[name].norm())
        return math.sqrt(max(sd2, 0.0) / self.count) / max(norm, 1e-300)


def observables(phis, gs, f_new, ntk, y, p: int) -> dict[str, torch.Tensor]:
    """The raw per-iterate observables: f (T+1, P_all), loss (T+1), ntk, Phi^l, G^l (n, n)."""
    out = {"f_train": f_new[:, :p], "loss": ((f_new[:, :p] - y) ** 2).mean(-1), "ntk": ntk}
    if f_new.shape[1] > p:
        out["f_test"] = f_new[:, p:]
    for l, (ph, g) in enumerate(zip(phis, gs)):
        out[f"phi{l}"], out[f"g{l}"] = ph, g
    return out


def standard_errors(spread: IterateSpread, split_half: list[float], depth: int,
                    has_test: bool) -> dict:
    """``info["standard_error"]``: {"phi": [per layer], "g": [per layer], "loss", "f_train",
    "f_test", "ntk"} relative errors. ``split_half``: per-layer ``[se_phi, se_g, ...]`` of the
    last iteration (relative), divided by sqrt(window) as the window's mean averages them."""
    m = max(spread.count, 1)
    out: dict = {"phi": [], "g": []}
    for l in range(depth):
        for key, sh in (("phi", split_half[2 * l]), ("g", split_half[2 * l + 1])):
            it_se = spread.relative_se(f"{key}{l}")
            out[key].append(max(sh / math.sqrt(m), it_se or 0.0))
    kern = max(out["phi"] + out["g"])
    for name in ("loss", "f_train", "f_test", "ntk"):
        if name == "f_test" and not has_test:
            continue
        v = spread.relative_se(name)
        # fewer than 2 iterates: no spread; the largest kernel error stands in (heuristic)
        out[name] = v if v is not None else kern
    return out
