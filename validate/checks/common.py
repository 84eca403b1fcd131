"""Helpers shared by the checks: observable selection, theory errors, network ensembles."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..metrics import LAYERED, check_observable, match_times, observable


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


def theory_stderr(sol: Any, name: str, layer: int | None) -> torch.Tensor | None:
    """The theory's Monte Carlo standard error of an observable, if the solver reported one.

    Looked up in ``sol.info["stderr"][name]`` (a tensor shaped like the observable, or a tuple
    over layers); exact solvers report none (None).
    """
    table = (getattr(sol, "info", None) or {}).get("stderr") or {}
    v = table.get(name)
    if v is None:
        return None
    if isinstance(v, (tuple, list)):
        v = v[layer]
    return torch.as_tensor(v, dtype=torch.float64)


def theory_on_grid(ref: torch.Tensor, name: str, t_theory: torch.Tensor, t_net: torch.Tensor) -> torch.Tensor:
    """Restrict a theory observable to the times the networks recorded."""
    if name.endswith("_final") or len(t_net) == len(t_theory):
        return ref
    idx = match_times(t_theory, t_net)
    ref = ref.index_select(0, idx)
    if name.endswith("_2t"):
        ref = ref.index_select(2, idx)
    return ref


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
