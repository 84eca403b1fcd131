"""False alarms and power of the ``fluctuation`` and ``single_width`` checks on trained networks.

    OMP_NUM_THREADS=1 nice python -m benchmarks.bench_fluctuation_false_alarms [--bases 20]
        [--executor serial|processes] [--out rows.csv]

Runs the four finite-width checks of the default suite (``validate.suites.default``: the rich
deep linear MLP with the exact prediction, the lazy tanh MLP with the static-kernel prediction;
the suite's widths and seeds) at ``--bases`` independent base seeds (networks ``b * 1000 +
i``, so no two bases share a network), on real ``simulate.train`` ensembles:

- the correct theory: every gating row should pass; a ``fail`` row is a false alarm and an
  ``inconclusive`` one costs nothing but the decision;
- planted faults on the same networks (the predictions and solves are recomputed, the ensembles
  reused): the predicted variance of every observable times 0.5, 1.5 and 2 (seen by
  ``fluctuation``), and the kernels of the theory (NTK, every Phi and G) times 1.05 (a mean
  shift, seen by ``single_width``; the variance prediction stays correct).

Prints, per check and case: runs, gating rows, rows that fail / are inconclusive / pass, and the
fraction of runs whose overall verdict is ``fail`` (the false-alarm rate of a run for the
correct theory; the power for a fault). Timed under whatever load the machine has.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import pandas as pd

from validate.jobs import default_predictor
from validate.power import scale_kernels
from validate.sources import Context, Session, default_solver
from validate.suites import Suite, run_suite
from validate.suites import default

VARIANCE_FIELDS = ("loss", "loss_cov", "f_train", "f_test", "ntk")


@dataclasses.dataclass(frozen=True)
class ScaledPredictor:
    """``theory.fluctuations`` with every predicted variance times ``factor`` (a planted fault)."""

    factor: float

    def __call__(self, problem, method="auto", **kw):
        fl, c = default_predictor(problem, method, **kw), self.factor
        scaled = {k: None if getattr(fl, k) is None else c * getattr(fl, k) for k in VARIANCE_FIELDS}
        return dataclasses.replace(fl, **scaled, phi=tuple(c * p for p in fl.phi), g=tuple(c * p for p in fl.g))


@dataclasses.dataclass(frozen=True)
class ShiftedSolver:
    """The infinite-width solve with every kernel times ``factor`` (a planted mean shift)."""

    factor: float

    def __call__(self, problem, scheme="dmft", **kw):
        return scale_kernels(default_solver(problem, scheme, **kw), self.factor)


def own_solution_predictor(problem, method="auto", *, solution=None, **kw):
    """``theory.fluctuations`` around its own solve (so a shifted reference leaves it correct)."""
    return default_predictor(problem, method, **kw)


CASES = {  # name: (checks it is aimed at, Context overrides)
    "correct": (("fluctuation", "single_width"), {}),
    "variance x0.5": (("fluctuation",), {"predictor": ScaledPredictor(0.5)}),
    "variance x1.5": (("fluctuation",), {"predictor": ScaledPredictor(1.5)}),
    "variance x2": (("fluctuation",), {"predictor": ScaledPredictor(2.0)}),
    "kernels x1.05": (("single_width",), {"solver": ShiftedSolver(1.05), "predictor": own_solution_predictor}),
}


def finite_width_checks() -> list:
    """The ``fluctuation`` and ``single_width`` checks of the default suite."""
    return [c for c in default.build().checks if c.name.split("/")[0] in ("fluctuation", "single_width")]


def run_base(base: int, executor: str) -> pd.DataFrame:
    """Every case at one base seed; one row per (case, check) with its gating verdict counts.
    The cases share one session, so the ensembles are trained once per base."""
    checks, session, out = finite_width_checks(), Session(), []
    for case, (kinds, overrides) in CASES.items():
        chosen = tuple(c for c in checks if c.name.split("/")[0] in kinds)
        ctx = Context(seed=base * 1000, progress=False, session=session, **overrides)
        res, _ = run_suite(Suite("bench", "", chosen), ctx, executor=executor)
        v = res.verdicts[res.verdicts["gating"]]
        for check, grp in v.groupby("check"):
            counts = grp["verdict"].value_counts()
            out.append(dict(base=base, case=case, check=check, rows=len(grp),
                            **{k: int(counts.get(k, 0)) for k in ("fail", "inconclusive", "pass")},
                            run_fail=bool((grp["verdict"] == "fail").any())))
    return pd.DataFrame(out)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["case", "check"], sort=False)
    return g.agg(runs=("base", "nunique"), rows=("rows", "sum"), fail=("fail", "sum"),
                 inconclusive=("inconclusive", "sum"), passed=("pass", "sum"),
                 runs_failed=("run_fail", "sum")).reset_index()


def main(argv=None) -> None:  # pragma: no cover - a measurement script
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bases", type=int, default=20, help="independent base seeds (default 20)")
    ap.add_argument("--first", type=int, default=1, help="first base seed (default 1)")
    ap.add_argument("--executor", default="serial", help="serial or processes[:N] (default serial)")
    ap.add_argument("--out", default=None, help="CSV of the per-base rows (written after every base)")
    args = ap.parse_args(argv)
    parts = []
    for b in range(args.first, args.first + args.bases):
        t0 = time.perf_counter()
        parts.append(run_base(b, args.executor))
        df = pd.concat(parts, ignore_index=True)
        if args.out:
            df.to_csv(args.out, index=False)
        print(f"base {b}: {time.perf_counter() - t0:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    print(summarise(df).to_string(index=False))


if __name__ == "__main__":  # pragma: no cover
    main()
