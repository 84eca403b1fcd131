"""Helpers shared by the checks: observable selection, theory errors, network ensembles, and
what a check reports when a solve or a training gives it nothing to compare (:class:`Unavailable`)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..frame import Verdict, verdict_row
from ..metrics import LAYERED, check_observable, observable


class Unavailable(Exception):
    """A solve or a training that a check needs gave no usable result.

    ``verdict`` is what the check's rows then say and ``reason`` why (one line):
    :data:`Verdict.INCONCLUSIVE` for a theory whose status is not ok (the theory has no answer,
    which says nothing about the networks), :data:`Verdict.FAIL` for an exception raised by a
    solve or a training (the run failed; ``dmft`` exits 1). Build it with :func:`usable_theory`
    or :func:`attempt`; turn it into rows with :meth:`rows`.
    """

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(reason)
        self.verdict, self.reason = Verdict(verdict), reason

    def rows(self, bases: list[dict]) -> list[dict]:
        """One verdict row per ``base`` (check, observable, ..., statistic, tolerance); rows of a
        failed run always gate, inconclusive ones keep the base's ``gating``."""
        out = []
        for b in bases:
            gating = True if self.verdict is Verdict.FAIL else b.get("gating", True)
            out.append(verdict_row(**{**b, "gating": gating}, verdict=self.verdict, reason=self.reason))
        return out


def theory_problem(sol: Any, scheme: str) -> str | None:
    """None when ``sol`` is usable (``sol.ok``); otherwise the one-line reason, with the status
    (``sol.status.value``) and the solver's own ``info["reason"]`` where it gives one."""
    if sol.ok:
        return None
    why = (getattr(sol, "info", None) or {}).get("reason")
    return (f"theory ({scheme}) status {sol.status.value}" + (f": {why}" if why else "")
            + "; no reference to compare with (not a verdict on the networks)")


def usable_theory(sol: Any, scheme: str) -> Any:
    """``sol`` when its status is ok; else raise :class:`Unavailable` (inconclusive)."""
    why = theory_problem(sol, scheme)
    if why is not None:
        raise Unavailable(Verdict.INCONCLUSIVE, why)
    return sol


def attempt(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; an exception from it (SolverError, DivergenceError, out of memory,
    ...) becomes :class:`Unavailable` (fail) naming ``what`` and the error. Ctrl-C passes through."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure of a solve/train is the check's verdict
        msg = " ".join(str(exc).split()) or "(no message)"
        raise Unavailable(Verdict.FAIL, f"{what} failed: {type(exc).__name__}: {msg}") from exc


def theory(ctx: Any, problem: Any, scheme: str, **options: Any) -> Any:
    """``ctx.theory(problem, scheme, **options)``, usable or :class:`Unavailable`."""
    sol = attempt(f"theory solve ({scheme})", ctx.theory, problem, scheme, **options)
    return usable_theory(sol, scheme)


def networks(ctx: Any, problem: Any, width: int, seeds: int, **kw: Any) -> Any:
    """``ctx.networks(problem, width, seeds, **kw)``, or :class:`Unavailable` when training raised."""
    return attempt(f"training (width {width}, {seeds} seeds)", ctx.networks, problem, width, seeds, **kw)


def ensembles(ctx: Any, problem: Any, widths: tuple[int, ...], seeds: int, label: str, **kw: Any) -> dict[int, Any]:
    """``{width: networks(ctx, problem, width, seeds, **kw)}`` (``label`` names the check)."""
    return {w: networks(ctx, problem, w, seeds, **kw) for w in widths}


def expand_observables(names: tuple[str, ...], depth: int) -> list[tuple[str, int | None]]:
    """``"phi"`` -> every layer; ``"phi:1"`` -> layer 1 only; others -> (name, None)."""
    out = []
    for item in names:
        name, _, layer = item.partition(":")
        if name in LAYERED:
            layers = [int(layer)] if layer else list(range(depth))
            for l in layers:
                check_observable(name, l, depth)
                out.append((name, l))
        else:
            if layer:
                raise ValueError(f"observable: {name!r} has no layers (got {item!r})")
            check_observable(name)
            out.append((name, None))
    return out


OUTPUT_FAMILY = {"loss", "test_loss", "test_error", "f_train", "f_test", "ntk", "ntk_final"}


def theory_stderr(sol: Any, name: str, layer: int | None, ref: torch.Tensor) -> torch.Tensor | None:
    """The theory's Monte Carlo standard error of observable ``name`` (shaped like ``ref``), or None.

    Read from ``sol.info["standard_error"]`` (theory.montecarlo), keyed
    by kernel name (``"phi"``, ``"g"``, ``"ntk"``, ``"loss"``, ...); a value may be a tensor shaped
    like the Solution field, a tuple over layers, or a scalar *relative* error (spread evenly over
    the elements). Output observables (loss, ntk, ...) without their own entry take the mean of
    the scalar relative kernel errors: a heuristic (the NTK mixes every layer's Phi and G), better
    replaced by the solver's own estimate. Exact solvers report none: None.
    """
    info = getattr(sol, "info", None) or {}
    table = info.get("standard_error") or {}
    if not table:
        return None
    base = name.split("_")[0] if name not in OUTPUT_FAMILY else name.replace("_final", "")
    if name == "alignment_yy":
        base, layer = "phi", -1
    v = table.get(base)
    if isinstance(v, (tuple, list)):
        v = v[layer if layer is not None else -1]
    if v is None and name in OUTPUT_FAMILY:
        scalars = [float(x) for val in table.values()
                   for x in (val if isinstance(val, (tuple, list)) else [val])
                   if isinstance(x, (int, float)) or (torch.is_tensor(x) and x.numel() == 1)]
        v = sum(scalars) / len(scalars) if scalars else None
    if v is None:
        return None
    v = torch.as_tensor(v, dtype=torch.float64)
    if v.numel() == 1:  # relative error of the whole observable
        return torch.full_like(ref, float(v) * float(ref.norm()) / ref.numel() ** 0.5)
    if name in ("phi", "g", "phi_final", "g_final") and v.ndim == 4:
        v = torch.diagonal(v, dim1=0, dim2=2).permute(2, 0, 1)
        v = v[-1] if name.endswith("_final") else v
    if v.shape != ref.shape:
        raise ValueError(f"theory standard error of {name!r}: shape {tuple(v.shape)} does not match {tuple(ref.shape)}")
    return v


KERNEL_FAMILY = {"phi", "g", "phi_2t", "g_2t", "phi_final", "g_final", "alignment_yy"}


def steps_of(net: Any, name: str, n_steps: int) -> torch.Tensor:
    """Step indices of an observable's time axis in ``net``: the recorded ``kernel_times`` for
    the two-time-kernel family (simulate's ``times=``), else every step 0..T."""
    kt = getattr(net, "kernel_times", None)
    if name in KERNEL_FAMILY and kt is not None:
        return torch.as_tensor(kt, dtype=torch.long)
    return torch.arange(n_steps + 1)


def theory_on_grid(sol: Any, name: str, problem: Any, layer: int | None, net: Any) -> torch.Tensor:
    """The theory observable at the times the networks recorded (kernel_times for kernels)."""
    full = observable(sol, name, problem, layer)
    idx = steps_of(net, name, problem.steps)
    if len(idx) == problem.steps + 1 or name in ("ntk_final",):
        return full
    if name.endswith("_final"):
        return observable(sol, name.replace("_final", ""), problem, layer)[idx[-1]]
    full = full.index_select(0, idx)
    if name.endswith("_2t"):
        full = full.index_select(2, idx)
    return full


def ensemble(nets: Any, name: str, problem: Any, layer: int | None) -> tuple[torch.Tensor, int]:
    """Per-seed observable of the non-diverged seeds, (S_ok, ...), and the number dropped."""
    x = observable(nets, name, problem, layer)
    div = getattr(nets, "diverged", None)
    ok = torch.ones(x.shape[0], dtype=torch.bool) if div is None else ~torch.as_tensor(div, dtype=torch.bool)
    ok = ok & torch.isfinite(x.reshape(x.shape[0], -1)).all(-1)
    return x[ok], int((~ok).sum())


def base_row(check: str, spec: Any, name: str, layer: int | None, scheme: str) -> dict:
    return dict(check=check, observable=name, scheme=scheme, gamma0=spec.gamma0,
                depth=spec.depth, layer=np.nan if layer is None else layer)
