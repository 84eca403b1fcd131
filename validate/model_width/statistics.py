"""Width exponents with seed-based confidence intervals, and the verdict rows of a width study.

Width exponent (statistics ``rms``, ``delta_rms``, ``output``): at each step, with seed means
``m_N`` and their standard errors ``se_N`` over the S seeds of width N, the exponent is the
least-squares slope of ``log m_N`` against ``log N``:

    alpha = sum_N a_N log m_N,   a_N = (log N - mean log N) / sum_N (log N - mean log N)^2

Widths have independent seeds, so by the delta method (``Var log m_N ~ se_N^2 / m_N^2``) its
standard error is ``se(alpha) = sqrt(sum_N a_N^2 se_N^2 / m_N^2)``. It is the uncertainty from
the seeds of this slope over these widths, not a test that the curve is a power law.

Verdicts use the project's rule (``validate.stats.decide``, z = 2):

- exponent rows test ``|alpha - expected|`` against the tolerance, so ``tolerance`` is the
  largest allowed deviation of the width exponent from its expectation (0.1: the statistic may
  grow or shrink at most like N^0.1, about 23 % over an 8-fold width range);
- ``loss`` rows are the project's width-independence statistic: the relative difference of
  the seed-mean loss at width N from the widest width (``validate.stats.relative_difference``),
  one row per narrower width; ``tolerance`` is the largest allowed relative difference
  (0.1 = 10 %).

Rows at step 0 describe the initialisation and do not gate; ``delta_rms`` is 0 there by
definition and a statistic that is exactly 0 at every width gets no row. A row at step t whose
widths include a run that diverged at or before t fails, naming the width, seed and step.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

from ..frame import Verdict, verdict_row
from ..stats import Z_DEFAULT, decide, mean_se, relative_difference
from .config import NETWORK, StudyConfig
from .runs import WidthRun

EXPONENT_STATISTICS = ("output", "rms", "delta_rms")


@dataclass(frozen=True)
class Exponent:
    """Width exponent ``slope`` and its ``stderr`` (module docstring); means, ses: (W,) per width."""

    slope: float
    stderr: float
    means: np.ndarray
    ses: np.ndarray


def width_exponent(widths, samples: list[np.ndarray]) -> Exponent:
    """Slope of log(seed mean) on log(width). samples[k]: (S_k,) values at ``widths[k]``.

    A non-positive seed mean has no logarithm: slope NaN, stderr inf.
    """
    means, ses = (np.array(v, dtype=float) for v in zip(*(mean_se(s) for s in samples)))
    if not (means > 0).all():
        return Exponent(np.nan, np.inf, means, ses)
    u = np.log(np.asarray(widths, dtype=float))
    a = (u - u.mean()) / ((u - u.mean()) ** 2).sum()
    slope = float(a @ np.log(means))
    return Exponent(slope, float(np.sqrt((a**2 * (ses / means) ** 2).sum())), means, ses)


def observable_label(statistic: str, module: str) -> str:
    """``loss``, ``output`` or ``statistic[module]``: the verdict table's ``observable``."""
    return statistic if module == NETWORK else f"{statistic}[{module}]"


def expected_exponent(cfg: StudyConfig, module: str) -> float:
    """The exponent of the first ``expect`` pattern matching ``module``; 0 when none does."""
    return next((e for p, e in cfg.expect if fnmatchcase(module, p)), 0.0)


def _dead(runs: list[WidthRun], step: int) -> str:
    hits = [f"width {r.width} seed {s} at step {int(d)}" for r in runs for s, d in enumerate(r.diverged_step)
            if 0 <= d <= step]
    return "" if not hits else "diverged (NaN or inf): " + ", ".join(hits[:4]) + (" ..." if len(hits) > 4 else "")


def _base(cfg: StudyConfig, statistic: str, module: str, step: int, name: str) -> dict:
    return dict(check=cfg.name, observable=observable_label(statistic, module), scheme="networks",
                time=step, statistic=name, tolerance=cfg.tolerance[statistic],
                gating=statistic in cfg.observables and step >= 1)


def exponent_row(cfg: StudyConfig, runs: list[WidthRun], module: str, statistic: str, step: int) -> dict | None:
    """The ``width_exponent`` row of (module, statistic, step), or None when it is 0 everywhere."""
    base = _base(cfg, statistic, module, step, "width_exponent")
    dead = _dead(runs, step)
    if dead:
        return verdict_row(**base, verdict=Verdict.FAIL, reason=dead)
    samples = [r.values[(module, statistic)][:, step] for r in runs]
    if all((s == 0).all() for s in samples):
        return None
    ex = width_exponent([r.width for r in runs], samples)
    what = "the network output" if module == NETWORK else f"module {module!r}"
    if not np.isfinite(ex.slope):
        zero = [r.width for r, m in zip(runs, ex.means) if not m > 0]
        return verdict_row(**base, verdict=Verdict.INCONCLUSIVE,
                           reason=f"{statistic} of {what} at step {step}: seed mean is 0 at widths {zero}, "
                                  "so it has no width exponent")
    e = expected_exponent(cfg, module)
    v, why = decide(abs(ex.slope - e), ex.stderr, cfg.tolerance[statistic], Z_DEFAULT,
                    what=f"{statistic} of {what} at step {step}: width exponent {ex.slope:.3g} ± {ex.stderr:.2g} "
                         f"(expected {e:g}); deviation")
    return verdict_row(**base, estimate=ex.slope, stderr=ex.stderr, verdict=v, reason=why)


def loss_rows(cfg: StudyConfig, runs: list[WidthRun], step: int) -> list[dict]:
    """``rel_diff_vs_widest`` rows of the loss at ``step``, one per narrower width."""
    top = runs[-1]
    rows = []
    for r in runs[:-1]:
        base = dict(_base(cfg, "loss", NETWORK, step, "rel_diff_vs_widest"), width=r.width)
        dead = _dead([r, top], step)
        if dead:
            rows.append(verdict_row(**base, verdict=Verdict.FAIL, reason=dead))
            continue
        d, se = relative_difference(r.values[(NETWORK, "loss")][:, step], top.values[(NETWORK, "loss")][:, step])
        v, why = decide(abs(d), se, cfg.tolerance["loss"], Z_DEFAULT,
                        what=f"loss at step {step}: relative difference N={r.width} vs N={top.width}")
        rows.append(verdict_row(**base, estimate=d, stderr=se, verdict=v, reason=why))
    return rows


def verdict_rows(cfg: StudyConfig, runs: list[WidthRun]) -> list[dict]:
    """Every row of the study: loss rows, then exponent rows per (module, statistic), each by step."""
    rows = []
    keys = [k for k in runs[0].values if k[1] in EXPONENT_STATISTICS]
    with np.errstate(over="ignore", invalid="ignore"):  # huge values just before a divergence
        for t in range(cfg.steps + 1):
            rows += loss_rows(cfg, runs, t)
        for module, statistic in sorted(keys, key=lambda k: (EXPONENT_STATISTICS.index(k[1]), k[0] != NETWORK)):
            for t in range(cfg.steps + 1):
                row = exponent_row(cfg, runs, module, statistic, t)
                if row is not None:
                    rows.append(row)
    return rows
