"""``CNNTask``: the evaluation curves of ``simulate.cnn.train_cnn``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from simulate.cache import Record, spec_key
from simulate.identity import source_version


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
