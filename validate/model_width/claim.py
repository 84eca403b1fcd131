"""``model = "python"`` claims: the width study of any PyTorch model, declared in a claim file.

    [[claim]]
    name = "mup-mlp-width-independent"
    kind = "width_independence"
    observables = ["loss", "delta_rms"]       # from loss, output, rms, delta_rms
    tolerance = 0.1                           # or one per statistic: {loss = 0.1, delta_rms = 0.2, ...}
    modules = ["hidden*"]                     # optional: names or glob patterns (default every leaf)
    expect = {readout = 0.0}                  # optional: {module pattern = expected width exponent}
    [claim.problem]
    model = "python"
    factory = "width_models:MuPMLP"           # "module:callable", width -> torch.nn.Module
    optimizer = "width_models:mup_sgd"        # (model, width) -> torch.optim.Optimizer
    data = "width_models:MLP_DATA"            # (x, y) tensors, or a callable (step, generator) -> (x, y)
    loss = "mse"                              # "mse", "cross_entropy" or "module:callable"
    steps = 10
    [claim.grid]
    widths = [64, 128, 256, 512]
    seeds = 16
    [claim.options]
    batching = "auto"                         # optional: "auto", "vmap", "loop"

A ``module`` is looked up next to the claim file first (``module.py`` or a package folder
there), then on ``sys.path``. The references are checked when the file is loaded: a missing
module or attribute, a factory that does not return a ``torch.nn.Module`` at the first width,
an optimizer rule that does not return a ``torch.optim.Optimizer``, and a ``modules`` pattern
that matches no module are input errors naming the field (``problem.factory`` ...), which
``validate.claims`` turns into file:line messages (``dmft check`` exits 2).

The claim is decided by its ``width_study`` row: the overall verdict of the study's gating rows
(``validate.model_width.statistics``), which follow it in the table (the non-gating rows are
left out of claim results).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..frame import CheckResult, Verdict, frame, verdict_row
from .config import StudyConfig, make_config
from .hooks import select_modules
from .runs import build_optimizer

#: Claim-file field of each width_study argument (for error messages).
CLAIM_FIELDS = {"model": "problem.factory", "data": "problem.data", "optimizer": "problem.optimizer",
                "loss": "problem.loss", "steps": "problem.steps", "widths": "grid.widths", "seeds": "grid.seeds",
                "batching": "options.batching"}
_loaded: dict[Path, Any] = {}


def _module_next_to(name: str, base: Path):
    """The module ``name`` from a file or package under ``base``, or None when there is none."""
    rel = Path(*name.split("."))
    for path in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
        if path.is_file():
            path = path.resolve()
            if path not in _loaded:
                key = name if name not in sys.modules else f"dmft_claims_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
                spec = importlib.util.spec_from_file_location(key, path)
                mod = importlib.util.module_from_spec(spec)
                sys.modules[key] = mod
                sys.path.insert(0, str(base))  # so it can import its neighbours
                try:
                    spec.loader.exec_module(mod)
                except BaseException:
                    sys.modules.pop(key, None)
                    raise
                finally:
                    sys.path.remove(str(base))
                _loaded[path] = mod
            return _loaded[path]
    return None


def resolve(ref: Any, base: Path, name: str) -> Any:
    """The object ``"module:attr"`` names (``attr`` may be dotted); ValueError naming field ``name``."""
    if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
        raise ValueError(f"{name}: must be a reference 'module:callable', got {ref!r}")
    mod_name, attr = ref.split(":")
    try:
        mod = _module_next_to(mod_name, base)
        if mod is None:
            mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise ValueError(f"{name}: module {mod_name!r} not found next to the claim file ({base}) or on "
                         f"sys.path ({exc})") from None
    except Exception as exc:  # the user's module raised while importing
        raise ValueError(f"{name}: importing module {mod_name!r} failed: {type(exc).__name__}: {exc}") from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{name}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class PythonModelSpec:
    """The ``[claim.problem]`` table of a ``model = "python"`` claim (module docstring)."""

    _: KW_ONLY
    model: str = "python"
    factory: str = ""
    optimizer: str = ""
    data: str = ""
    loss: str = "mse"
    steps: int = 20
    base_dir: Path = field(default=Path("."), compare=False)

    def __post_init__(self) -> None:
        if self.model != "python":
            raise ValueError(f"model: PythonModelSpec needs model 'python', got {self.model!r}")
        for name in ("factory", "optimizer", "data"):
            if not getattr(self, name):
                raise ValueError(f"{name}: required for model 'python' (a reference 'module:callable')")
        refs = {n: resolve(getattr(self, n), self.base_dir, n) for n in ("factory", "optimizer", "data")}
        if not callable(refs["factory"]):
            raise ValueError(f"factory: {self.factory!r} is not callable (it must map a width to a torch.nn.Module)")
        if not callable(refs["optimizer"]):
            raise ValueError(f"optimizer: {self.optimizer!r} is not callable (it must map (model, width) to an optimizer)")
        if isinstance(self.loss, str) and ":" in self.loss:
            refs["loss"] = resolve(self.loss, self.base_dir, "loss")
        object.__setattr__(self, "_refs", refs)

    @classmethod
    def from_dict(cls, d: dict[str, Any], base_dir: Path) -> "PythonModelSpec":
        names = {"model", "factory", "optimizer", "data", "loss", "steps"}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown field for model 'python'; valid fields are {sorted(names)}")
        return cls(**d, base_dir=Path(base_dir))

    def ref(self, name: str) -> Any:
        """The resolved object of field ``name`` (factory, optimizer, data, loss)."""
        return self._refs.get(name, self.loss if name == "loss" else None)


def _claim_error(exc: Exception) -> ValueError:
    """Rename the argument at the head of a width_study error to its claim-file field."""
    head, _, rest = str(exc).partition(":")
    return ValueError(f"{CLAIM_FIELDS.get(head, head)}:{rest}")


@dataclass(frozen=True)
class ModelWidthStudy:
    """A claim's width study (module docstring); ``run(ctx)`` trains on ``ctx.device`` with ``ctx.seed``."""

    problem: PythonModelSpec
    widths: tuple[int, ...] = (64, 128, 256, 512)
    seeds: int = 8
    observables: tuple[str, ...] = ("loss", "delta_rms")
    tolerance: float | dict = 0.1
    modules: tuple[str, ...] | None = None
    expect: dict | None = None
    batching: str = "auto"
    name: str = "width_study"
    statistic = "width_study"  # class attribute: the row a claim decides on

    def __post_init__(self) -> None:
        try:
            cfg = self.config(seed=0, device="cpu")
        except (TypeError, ValueError) as exc:
            raise _claim_error(exc) from None
        w, p = cfg.widths[0], self.problem
        try:
            with torch.random.fork_rng():
                model = p.ref("factory")(w)
        except Exception as exc:
            raise ValueError(f"problem.factory: {p.factory}({w}) raised {type(exc).__name__}: {exc}") from None
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"problem.factory: {p.factory}({w}) returned {type(model).__name__}, "
                             "not a torch.nn.Module")
        select_modules(model, cfg.modules)  # a pattern that matches nothing is an input error now
        try:
            build_optimizer(cfg, model, w)
        except Exception as exc:
            why = str(exc).partition(": ")[2] if isinstance(exc, TypeError) else f"raised {type(exc).__name__}: {exc}"
            raise ValueError(f"problem.optimizer: {p.optimizer}: {why}") from None

    def statistics(self) -> tuple[str, ...]:
        """The ``statistic`` values of this check's verdict rows."""
        return (self.statistic, "rel_diff_vs_widest", "width_exponent")

    def config(self, *, seed: int, device: str) -> StudyConfig:
        p = self.problem
        return make_config(p.ref("factory"), widths=self.widths, data=p.ref("data"), optimizer=p.ref("optimizer"),
                           loss=p.ref("loss"), steps=p.steps, seeds=self.seeds, seed=seed, device=device,
                           observables=self.observables, tolerance=self.tolerance, modules=self.modules,
                           expect=self.expect, batching=self.batching, name=self.name)

    def run(self, ctx) -> CheckResult:
        """The study's tables, its gating rows only, led by the deciding ``width_study`` row."""
        from .study import run_config

        study = run_config(self.config(seed=ctx.seed, device=ctx.device))
        res = study.check_result()
        g = res.verdicts[res.verdicts["gating"]]
        fails = g[g["verdict"] == Verdict.FAIL.value]
        verdict = study.verdict
        why = f"{len(fails)} of {len(g)} deciding rows fail"
        if len(fails):
            why += f" ({', '.join(study.failing_modules()[:8])}); first: {fails['reason'].iloc[0]}"
        elif verdict is Verdict.INCONCLUSIVE:
            und = g[g["verdict"] == Verdict.INCONCLUSIVE.value]
            why += f", {len(und)} inconclusive; first: {und['reason'].iloc[0] if len(und) else 'no deciding rows'}"
        tol = self.tolerance if isinstance(self.tolerance, (int, float)) else float("nan")
        head = verdict_row(check=self.name, observable=",".join(self.observables), scheme="networks",
                           statistic=self.statistic, tolerance=tol, verdict=verdict, reason=why)
        res.verdicts = frame("verdicts", [head] + g.to_dict("records"))
        return res


def build_claim_check(item: dict, base_dir: Path, err: Callable[[str, str], Exception]) -> ModelWidthStudy:
    """The :class:`ModelWidthStudy` of one ``[[claim]]`` table with ``model = "python"``.

    ``err(field, message)`` builds the caller's file:line error. Keys: name, statement, kind
    ("width_independence"), observable(s), statistic, tolerance, modules, expect, problem, grid
    (widths, seeds), options (batching).
    """
    keys = {"name", "statement", "kind", "observable", "observables", "statistic", "tolerance", "modules",
            "expect", "problem", "grid", "options"}
    unknown = sorted(set(item) - keys)
    if unknown:
        raise err(unknown[0], f"unknown field for model 'python'; valid fields are {sorted(keys)}")
    for req in ("name", "kind", "tolerance"):
        if req not in item:
            raise err(req, "required field is missing")
    for key in ("name", "statement", "kind", "statistic", "observable"):
        if key in item and not isinstance(item[key], str):
            raise err(key, f"must be a string, got {item[key]!r}")
    if not item["name"]:
        raise err("name", "must be a non-empty string")
    if item["kind"] != "width_independence":
        raise err("kind", f"model 'python' supports only kind 'width_independence', got {item['kind']!r}")
    for sub, allowed in (("grid", {"widths", "seeds"}), ("options", {"batching"})):
        table = item.get(sub, {})
        if not isinstance(table, dict):
            raise err(sub, "must be a table")
        bad = sorted(set(table) - allowed)
        if bad:
            raise err(f"{sub}.{bad[0]}", f"unknown field for model 'python'; valid fields are {sorted(allowed)}")
    if "observable" in item and "observables" in item:
        raise err("observables", "give either 'observable' or 'observables', not both")
    obs = item.get("observables", [item["observable"]] if "observable" in item else ["loss", "delta_rms"])
    if not isinstance(obs, list) or not obs or not all(isinstance(o, str) for o in obs):
        raise err("observables", f"must be a non-empty list of strings, got {obs!r}")
    try:
        spec = PythonModelSpec.from_dict(item.get("problem", {}), base_dir)
    except (TypeError, ValueError) as exc:
        raise err(f"problem.{str(exc).split(':')[0].strip()}", str(exc)) from None
    grid, opts = item.get("grid", {}), item.get("options", {})
    listed = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731
    kw = dict(problem=spec, name=item["name"], tolerance=item["tolerance"], observables=listed(obs),
              modules=listed(item.get("modules")), expect=item.get("expect"),
              **{k: listed(v) for k, v in {**grid, **opts}.items()})
    try:
        check = ModelWidthStudy(**kw)
    except (TypeError, ValueError) as exc:
        field_ = str(exc).split(":")[0].strip()
        raise err(field_ if "." in field_ or field_.split("[")[0] in keys else "problem", str(exc)) from None
    if "statistic" in item and item["statistic"] not in check.statistics():
        raise err("statistic", f"unknown value {item['statistic']!r}; the rows of a model 'python' claim have "
                               f"the statistics {list(check.statistics())}")
    return check
