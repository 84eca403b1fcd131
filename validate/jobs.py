"""The jobs a validation run submits (``simulate.sweep.Task``): theory solves, MLP ensembles, CNN runs.

Each job is plain data with a key over everything that changes its result (problem identity with
the code of a custom activation, width, seeds, seed, device, solver options, the identity of the
solver or trainer and the source of the code it runs). Its worker side computes the result and
packs it as a ``simulate.cache.Record``; ``decode`` turns the record into what the checks read.
Every result goes through its record, cached or not, wherever it ran.

What is stored (the checks read no more):

- ``SolveTask``: the whole ``theory.Solution`` in its own dtype (float64): it is the reference.
  Only Monte Carlo solves (nonlinear activation, gamma0 > 0, scheme other than ntk) go to the
  disk cache: the exact solvers take well under a second and their two-time kernels would
  dominate the cache.
- ``EnsembleTask``: losses and outputs in float64; the NTK and the *equal-time* kernels
  ``Phi^l(t, t)``, ``G^l(t, t)`` in float32, two-time kernels only when asked for
  (``two_time=True``). float32 rounds a kernel by 6e-8 relative, four orders of magnitude below
  the seed noise of any ensemble a check can decide with (the default suite's smallest relative
  standard errors are about 1e-3), and it halves the size; the equal-time kernels are
  ``(T+1)`` times smaller than the two-time ones (a default run writes about 100 MB instead of
  3.6 GB). A trainer that takes the keyword ``kernels`` (``simulate.train`` does) is asked for
  ``kernels="equal_time"`` unless two-time kernels are wanted, so it skips the two-time Gram
  matrices as well.
- ``CNNTask``: the evaluation curves of ``simulate.cnn.train_cnn`` (small).
- ``FluctuationTask``: ``theory.fluctuations`` (``N Var`` of every observable, with its Monte
  Carlo standard errors) together with the whole infinite-width Solution it linearised around
  (the reference of the ensemble means); cached unless the method is the (instant) lazy one.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from simulate.cache import Record, pack, spec_key, unpack
from simulate.identity import Uncacheable, digest, problem_identity, source_version
from simulate.sweep import TRAIN_SOURCES, problem_from_payload, problem_payload

KERNEL_DTYPE = torch.float32


def _key(spec: dict, problem: Any, parts: dict[str, Any]) -> tuple[str, str | None]:
    """The key of ``spec`` plus the identities of the problem and of ``parts`` (callables,
    options), and why it must not be cached (None: it may). A part whose identity cannot be told
    enters by its ``id`` (the key then holds for this process only)."""
    why = None
    try:
        spec["problem"] = problem_identity(problem)
    except Uncacheable as exc:  # a custom activation whose code cannot be digested
        spec["problem"], why = f"id:{id(problem)}", f"activation {problem.activation.name!r}: {exc}"
    for name, obj in parts.items():
        try:
            spec[name] = digest(obj)
        except Uncacheable as exc:
            spec[name], why = f"id:{id(obj)}", f"{name} {getattr(obj, '__name__', type(obj).__name__)!r}: {exc}"
    return spec_key(spec), why


# ----------------------------------------------------------------------------- theory solves
@dataclass(frozen=True, eq=False)
class SolveTask:
    """``solver(problem, scheme, **options)`` (``validate.sources.default_solver`` by default)."""

    problem: Any
    scheme: str
    options: dict
    solver: Callable[..., Any]
    kind = "solve"

    def __post_init__(self) -> None:
        spec = {"kind": self.kind, "scheme": self.scheme, "code": source_version("theory")}
        key, why = _key(spec, self.problem, {"solver": self.solver, "options": self.options})
        monte_carlo = (not self.problem.activation.is_linear and self.problem.gamma0 > 0
                       and self.scheme != "ntk")
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "uncacheable", why)
        object.__setattr__(self, "cached", why is None and monte_carlo)

    def key(self) -> str:
        return self._key

    def cost(self) -> float:
        """Rough multiply-adds, to start the longest jobs first: ~10 iterations of the
        Monte Carlo kernels (samples x ((T+1) P_all)^2 x L), with the responses about 10x that."""
        if not self.cached:
            return 0.0
        p, n = self.problem, (self.problem.steps + 1) * self.problem.n_points
        return 100.0 * float(self.options.get("samples", 4000)) * n * n * p.depth

    def payload(self):
        return solve_record, (problem_payload(self.problem), self.scheme, self.options, self.solver)

    def decode(self, rec: Record):
        return unpack_solution(self.problem, rec.meta["fields"], rec.tensors)


def solve_record(problem: dict, scheme: str, options: dict, solver) -> Record:
    """Worker side of :class:`SolveTask`: every field of the Solution but its problem."""
    sol = solver(problem_from_payload(problem), scheme, **options)
    tensors: dict = {}
    fields = pack_solution(sol, tensors)
    return Record({k: v.contiguous() for k, v in tensors.items()}, {"fields": fields})


def pack_solution(sol, tensors: dict) -> dict:
    """The fields of a Solution but its problem, packed into ``tensors`` (``simulate.cache.pack``)."""
    return {f.name: pack(getattr(sol, f.name), f.name, tensors) for f in dataclasses.fields(sol) if f.name != "problem"}


def unpack_solution(problem, fields: dict, tensors: dict):
    from theory import Solution

    return Solution(problem=problem, **unpack(fields, tensors))


# ----------------------------------------------------------------------------- MLP ensembles
@dataclass(frozen=True, eq=False)
class Ensemble:
    """Network ensemble as the checks read it (fields of ``simulate.Trajectories``, seed axis first).

    ``phi_eq[l]``, ``g_eq[l]``: (S, Tk, P_all, P_all) equal-time kernels at ``kernel_times``
    (float32); ``phi``/``g``: the two-time kernels (S, Tk, P_all, Tk, P_all), or None when not
    recorded. ``phi_diag(l)``/``g_diag(l)`` return the equal-time kernels, as on Trajectories.
    """

    problem: Any
    width: int
    seeds: int
    seed: int
    t: torch.Tensor
    loss: torch.Tensor
    f_train: torch.Tensor
    f_test: torch.Tensor | None
    ntk: torch.Tensor | None
    phi_eq: tuple | None
    g_eq: tuple | None
    phi: tuple | None
    g: tuple | None
    kernel_times: torch.Tensor
    diverged: torch.Tensor
    diverged_step: torch.Tensor
    info: dict = field(default_factory=dict)

    def phi_diag(self, layer: int) -> torch.Tensor:
        return self._eq("phi_eq", layer)

    def g_diag(self, layer: int) -> torch.Tensor:
        return self._eq("g_eq", layer)

    def _eq(self, name: str, layer: int) -> torch.Tensor:
        seq = getattr(self, name)
        if seq is None:
            raise ValueError(f"observable: the networks did not record {name[:-3]!r} kernels")
        return seq[layer]


@dataclass(frozen=True, eq=False)
class EnsembleTask:
    """``trainer(problem, width, seeds=seeds, seed=seed, device=device[, kernels=...])`` packed as an
    :class:`Ensemble` (``kernels``: module docstring)."""

    problem: Any
    width: int
    seeds: int
    seed: int
    device: str
    trainer: Callable[..., Any]
    two_time: bool = False
    kind = "ensemble"

    def __post_init__(self) -> None:
        spec = {"kind": self.kind, "width": int(self.width),
                "seeds": int(self.seeds), "seed": int(self.seed), "device": str(self.device),
                "two_time": bool(self.two_time), "kernels": self.kernels, "kernel_dtype": str(KERNEL_DTYPE),
                "code": source_version(*TRAIN_SOURCES), "torch": torch.__version__}
        key, why = _key(spec, self.problem, {"trainer": self.trainer})
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "uncacheable", why)
        object.__setattr__(self, "cached", why is None)

    @property
    def kernels(self) -> str:
        """The ``kernels=`` mode the trainer is asked for ("two_time" or "equal_time")."""
        return "two_time" if self.two_time else "equal_time"

    def key(self) -> str:
        return self._key

    def cost(self) -> float:
        """Rough multiply-adds of the training: forward/backward/update products over T steps and
        the kernels' Gram matrices, to start the longest jobs first."""
        p, N, T1 = self.problem, self.width, self.problem.steps + 1
        steps = self.seeds * p.steps * N * (p.input_dim + (p.depth - 1) * N + p.n_points) * p.n_points * 6
        side = T1 * p.n_points if self.two_time else p.n_points
        grams = 4 * p.depth * self.seeds * side**2 * N * (1 if self.two_time else T1)
        return float(steps + grams)

    def payload(self):
        return ensemble_record, (problem_payload(self.problem), self.width, self.seeds, self.seed, self.device,
                                 self.trainer, self.two_time)

    def decode(self, rec: Record) -> Ensemble:
        t, L = rec.tensors, self.problem.depth
        layers = lambda n: tuple(t[f"{n}.{l}"] for l in range(L)) if f"{n}.0" in t else None  # noqa: E731
        return Ensemble(self.problem, int(self.width), int(self.seeds), int(self.seed), t["t"], t["loss"],
                        t["f_train"], t.get("f_test"), t.get("ntk"), layers("phi_eq"), layers("g_eq"),
                        layers("phi"), layers("g"), t["kernel_times"], t["diverged"], t["diverged_step"],
                        info=dict(rec.meta))


def takes_keyword(fn: Callable, name: str) -> bool:
    """Whether ``fn`` accepts the keyword argument ``name`` (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read: do not guess
        return False
    return any(p.kind is p.VAR_KEYWORD or (p.name == name and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
               for p in params)


def ensemble_record(problem: dict, width, seeds, seed, device, trainer, two_time) -> Record:
    """Worker side of :class:`EnsembleTask` (what is stored: module docstring)."""
    pr = problem_from_payload(problem)
    mode = {"kernels": "equal_time"} if not two_time and takes_keyword(trainer, "kernels") else {}
    out = trainer(pr, width, seeds=seeds, seed=seed, device=device, **mode)
    f64 = lambda x: None if x is None else torch.as_tensor(x).detach().cpu().to(torch.float64)  # noqa: E731
    kt = getattr(out, "kernel_times", None)
    tensors = {"t": f64(out.t), "loss": f64(out.loss), "f_train": f64(out.f_train),
               "kernel_times": torch.arange(pr.steps + 1) if kt is None else torch.as_tensor(kt, dtype=torch.long),
               "diverged": torch.as_tensor(out.diverged, dtype=torch.bool),
               "diverged_step": torch.as_tensor(out.diverged_step, dtype=torch.long)}
    if getattr(out, "f_test", None) is not None:
        tensors["f_test"] = f64(out.f_test)
    if getattr(out, "ntk", None) is not None:
        tensors["ntk"] = out.ntk.detach().cpu().to(KERNEL_DTYPE)
    for name in ("phi", "g"):
        for l, k in enumerate(getattr(out, name, None) or ()):
            k = k.detach().cpu()
            tensors[f"{name}_eq.{l}"] = torch.diagonal(k, dim1=1, dim2=3).permute(0, 3, 1, 2).to(KERNEL_DTYPE)
            if two_time:
                tensors[f"{name}.{l}"] = k.to(KERNEL_DTYPE)
        if getattr(out, name, None) is None:  # recorded with kernels="equal_time"
            for l, k in enumerate(getattr(out, f"{name}_eq", None) or ()):
                tensors[f"{name}_eq.{l}"] = k.detach().cpu().to(KERNEL_DTYPE)
    info = getattr(out, "info", None) or {}
    return Record({k: v.contiguous() for k, v in tensors.items()},
                  {"wall_s": float(info.get("wall_s", float("nan")))})


# ----------------------------------------------------------------------------- CNN runs
CNN_FIELDS = ("train_loss", "test_mse", "test_error", "alignment")
CNN_SOURCES = ("simulate", "validate.cnn_spec")


@dataclass(frozen=True, eq=False)
class CNNTask:
    """``simulate.cnn.train_cnn`` of ``seeds`` CNNs with ``width`` channels on ``spec`` (a CNNSpec).

    Result: dict of the (S, E) curves :data:`CNN_FIELDS`, ``diverged`` (S,) and ``epoch`` (E,).
    """

    spec: Any
    width: int
    seeds: int
    seed: int
    device: str
    kind = "cnn"
    cached = True
    uncacheable = None

    def key(self) -> str:
        return spec_key({"kind": self.kind, "spec": self.spec.fingerprint(), "width": int(self.width),
                         "seeds": int(self.seeds), "seed": int(self.seed), "device": str(self.device),
                         "code": source_version(*CNN_SOURCES), "torch": torch.__version__})

    def payload(self):
        return cnn_record, (self.spec, int(self.width), int(self.seeds), int(self.seed), str(self.device))

    def decode(self, rec: Record) -> dict[str, torch.Tensor]:
        return {k: rec.tensors[k] for k in (*CNN_FIELDS, "diverged", "epoch")}


def cnn_record(spec, width: int, seeds: int, seed: int, device: str) -> Record:
    from simulate.cnn import train_cnn

    run = train_cnn(spec.dataset(), spec.config(width, seeds, seed=seed, device=device))
    return Record({k: getattr(run, k).detach().cpu().contiguous() for k in (*CNN_FIELDS, "diverged", "epoch")})


# ----------------------------------------------------------------------------- fluctuation predictions
#: The observables ``theory.fluctuations`` predicts (``phi``/``g`` per layer: keys "phi.0", ...).
PREDICTED = ("loss", "f_train", "f_test", "ntk", "phi", "g")


def default_predictor(problem, method="auto", **options):
    """``theory.fluctuations(problem, method, **options)``."""
    from theory import fluctuations

    return fluctuations(problem, method, **options)


def fluctuation_method(problem, method: str) -> str:
    """The method "auto" resolves to (``theory.fluctuation_method``, the rule of
    ``theory.fluctuations``); others unchanged."""
    from theory import fluctuation_method as resolve

    return resolve(problem, method).value


@dataclass(frozen=True, eq=False)
class Prediction:
    """What the checks read of a fluctuation prediction.

    solution: the infinite-width ``theory.Solution`` it linearised around; var[key]: ``N Var`` of
    each entry of observable ``key`` ("loss", "f_train", "f_test", "ntk", "phi.0", "g.1", ...;
    shaped like the observable); se[key]: its Monte Carlo standard error (absent for exact
    methods); status, method, reason: of the prediction (``theory.Status`` values).
    """

    solution: Any
    var: dict
    se: dict
    status: str
    method: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.status in ("exact", "converged")

    @staticmethod
    def key(name: str, layer: int | None) -> str:
        return name if layer is None else f"{name}.{layer}"


@dataclass(frozen=True, eq=False)
class FluctuationTask:
    """``predictor(problem, method, solution=sol, **options)`` around ``sol`` = the result of
    ``solve`` (a :class:`SolveTask`, computed again in the worker: one job, no dependency)."""

    solve: SolveTask
    method: str
    options: dict
    predictor: Callable[..., Any]
    kind = "fluctuation"

    def __post_init__(self) -> None:
        spec = {"kind": self.kind, "solve": self.solve.key(), "method": self.method,
                "code": source_version("theory")}
        key, why = _key(spec, self.solve.problem, {"predictor": self.predictor, "options": self.options})
        why = why or self.solve.uncacheable
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "uncacheable", why)
        object.__setattr__(self, "cached", why is None and self.method != "lazy")

    @property
    def problem(self):
        return self.solve.problem

    def key(self) -> str:
        return self._key

    def cost(self) -> float:
        """Rough multiply-adds: a Monte Carlo prediction is a few Monte Carlo solves."""
        p, n = self.problem, (self.problem.steps + 1) * self.problem.n_points
        return 0.0 if self.method == "lazy" else 1000.0 * float(self.options.get("samples") or 1000) * n * n * p.depth

    def payload(self):
        s = self.solve
        return fluctuation_record, (problem_payload(s.problem), s.scheme, s.options, s.solver, self.method,
                                    self.options, self.predictor)

    def decode(self, rec: Record) -> Prediction:
        t = rec.tensors
        part = lambda p: {k[len(p) + 1:]: v for k, v in t.items() if k.startswith(p + ":")}  # noqa: E731
        meta = dict(rec.meta)
        sol = unpack_solution(self.problem, meta.pop("fields"), {k: v for k, v in t.items() if ":" not in k})
        return Prediction(sol, part("var"), part("se"), **meta)


def fluctuation_record(problem: dict, scheme: str, solve_options: dict, solver, method: str, options: dict,
                       predictor) -> Record:
    """Worker side of :class:`FluctuationTask`: the solution (as :class:`SolveTask` stores it) and
    ``var:KEY`` / ``se:KEY`` tensors of every predicted observable."""
    pr = problem_from_payload(problem)
    sol = solver(pr, scheme, **solve_options)
    t: dict = {}
    fields = pack_solution(sol, t)
    if sol.ok:
        fl = predictor(pr, method, solution=sol, **options)
        status, used, reason = fl.status, fl.method, str(fl.info.get("reason", ""))
        se = fl.info.get("standard_error") or {}
        P = pr.n_train
        split = {"f_train": lambda v: v[:, :P], "f_test": lambda v: v[:, P:]}
        for name in ("loss", "f_train", "f_test", "ntk"):
            if getattr(fl, name) is None:
                continue
            t[f"var:{name}"] = getattr(fl, name)
            src = se.get("f" if name in split else name)
            if src is not None:
                t[f"se:{name}"] = split[name](src) if name in split else src
        for l in range(pr.depth):
            for name in ("phi", "g"):
                t[f"var:{name}.{l}"] = getattr(fl, name)[l]
                if name in se:
                    t[f"se:{name}.{l}"] = se[name][l]
    else:
        status, used = sol.status, method
        reason = f"the infinite-width solution has status {sol.status.value!r}: {sol.info.get('reason', '')}"
    t = {k: torch.as_tensor(v).detach().cpu().contiguous() for k, v in t.items()}
    return Record(t, {"fields": fields, "status": getattr(status, "value", str(status)), "method": str(used),
                      "reason": reason})
