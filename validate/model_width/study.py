"""The front door :func:`width_study`: train every width, record, decide."""

from __future__ import annotations

import pandas as pd

from ..frame import frame
from .batched import run_batched
from .config import StudyConfig, make_config
from .result import WidthStudy, tidy_curves
from .runs import Unbatchable, WidthRun, run_loop
from .statistics import verdict_rows


def run_width(cfg: StudyConfig, width: int) -> WidthRun:
    """The seeds of one width, batched with vmap unless ``cfg.batching`` is "loop" or vmap
    cannot run this model or optimizer ("auto" then falls back to the loop; "vmap" raises)."""
    note = ""
    if cfg.batching != "loop":
        try:
            return run_batched(cfg, width)
        except Unbatchable as exc:
            if cfg.batching == "vmap":
                raise ValueError(f"batching: 'vmap' is not possible here: {exc}") from None
            note = str(exc)
    return run_loop(cfg, width, note)


def width_study(model, *, widths=None, data, optimizer, loss="mse", steps: int = 20, seeds: int = 8,
                seed: int = 0, device="cpu", observables=("loss", "delta_rms"), tolerance=0.1,
                modules=None, expect=None, batching: str = "auto", name: str = "width_study") -> WidthStudy:
    """Does training of ``model`` stop depending on width? A statistical coordinate check.

    model: callable ``width -> torch.nn.Module`` (called under a fixed torch seed per run), or a
        dict ``{width: callable}``; widths: at least two (default 64, 128, 256, 512, or the
        dict's keys); data: full-batch ``(x, y)`` tensors, or a callable ``(step, generator) ->
        (x, y)`` for minibatches; optimizer: callable ``(model, width) -> torch.optim.Optimizer``
        (your learning-rate rule; one per model); loss: "mse", "cross_entropy" or a callable
        ``(output, y) -> scalar``; steps: optimizer steps (statistics at steps 0..steps);
        seeds: runs per width (>= 2); seed: base seed of the initialisations and of the data
        generator; device.
    observables: which statistics decide ("loss", "output", "rms", "delta_rms"); the others are
        recorded and reported with ``gating = False``.
    tolerance: a number, or a dict with one per statistic. For "loss" the largest allowed
        relative difference of the seed-mean loss from the widest width (0.1 = 10 %); for
        "rms", "delta_rms" and "output" the largest allowed deviation of the width exponent
        from its expectation (0.1: at most N^0.1 growth or decay).
    modules: names or glob patterns of the modules to hook (default: every leaf module).
    expect: ``{module pattern: expected width exponent}`` (first match wins; default 0). The
        network output's module name is "(network)".
    batching: "auto" (vmap over seeds when the model and optimizer allow it, else a loop over
        seeds), "vmap" or "loop". name: the ``check`` column of the verdict table.

    Returns a :class:`WidthStudy`. Statistics and verdict rules: ``validate.model_width.statistics``;
    recording: ``validate.model_width.hooks``; batching: ``validate.model_width.batched``.
    """
    return run_config(make_config(model, widths=widths, data=data, optimizer=optimizer, loss=loss, steps=steps,
                                  seeds=seeds, seed=seed, device=device, observables=observables,
                                  tolerance=tolerance, modules=modules, expect=expect, batching=batching, name=name))


def run_config(cfg: StudyConfig) -> WidthStudy:
    """The study of a checked configuration (what :func:`width_study` runs)."""
    runs = [run_width(cfg, w) for w in cfg.widths]
    keys = [set(r.values) for r in runs]
    if any(k != keys[0] for k in keys):
        odd = sorted({m for k in keys for m, _ in k ^ keys[0]})
        raise ValueError(f"model: the recorded modules differ between widths ({odd[:5]}); give `modules` "
                         "patterns that exist at every width")
    diverged = pd.DataFrame([dict(width=r.width, seed=s, step=int(d)) for r in runs
                             for s, d in enumerate(r.diverged_step) if d >= 0], columns=["width", "seed", "step"])
    info = {r.width: dict(path=r.path, note=r.note, seconds=round(r.seconds, 3)) for r in runs}
    return WidthStudy(config=cfg, curves=tidy_curves(runs), verdicts=frame("verdicts", verdict_rows(cfg, runs)),
                      diverged=diverged, info=info)
