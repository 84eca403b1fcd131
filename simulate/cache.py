"""The on-disk cache of finished jobs (sweeps and validation runs).

One entry is one file ``<folder>/<key>.npz``: a NumPy ``.npz`` archive holding the result's
tensors as plain arrays and a JSON header (``__meta__``: format name, :data:`VERSION`, the job's
kind and key, and the result's scalar fields). Nothing is ever unpickled: archives are read with
``numpy.load(allow_pickle=False)`` and the header with ``json``. An entry that is truncated,
corrupt, of another format or version, or written for another key is named in one
:class:`CacheWarning` line, deleted, and recomputed by the caller.

``key`` is :func:`spec_key` of the job's full specification (everything that changes the
result: see ``simulate.identity``). Entries are written with ``simulate.atomic.atomic_write`` (a
temporary sibling moved into place with ``os.replace``), so two runs sharing a folder never see a
half-written entry (the last writer of a key wins; both wrote the same result). Temporary files of
a run that was killed are removed by the next run that opens the folder
(``simulate.atomic.clean_stale``: its process is gone, or it has not changed for a long time).

The default folder is ``$DMFT_CACHE`` when set, else ``reports/runs/.cache`` under the current
directory (:func:`default_folder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import importlib
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_write, clean_stale, is_temp

FORMAT = "dmft-validate-cache"
#: Bump when the layout of an entry changes: older entries are then discarded and recomputed.
VERSION = 2
SUFFIX = ".npz"
META = "__meta__"
ENV = "DMFT_CACHE"


class CacheWarning(UserWarning):
    """An unusable cache entry was discarded (the message names the file and the reason)."""


@dataclass(frozen=True)
class Record:
    """A job's result as stored: named CPU tensors plus JSON-able scalar fields."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def spec_key(spec: Any) -> str:
    """40 hex digits of SHA-256 over the canonical JSON of ``spec`` (with :data:`VERSION`)."""
    text = json.dumps({"cache_version": VERSION, "spec": spec}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def default_folder() -> Path:
    """``$DMFT_CACHE``, else ``reports/runs/.cache`` (relative to the current directory)."""
    return Path(os.environ.get(ENV) or "reports/runs/.cache")


def pack(value: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON-able data; its tensors go into ``tensors`` under names starting ``name``.

    Keeps dicts, lists, tuples, numbers, strings, None and tensors (numpy arrays become tensors,
    numpy scalars numbers, enums their value) and dataclasses of this project (field by field);
    anything else is stored as its ``repr`` string. :func:`unpack` reverses it.
    """
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        tensors[name] = torch.as_tensor(value).detach().cpu()
        return {"__tensor__": name}
    if isinstance(value, (tuple, list)):
        items = [pack(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: pack(v, f"{name}.{k}", tensors) for k, v in value.items()}
        return {"__items__": [[pack(k, f"{name}.k{i}", tensors), pack(v, f"{name}.{i}", tensors)]
                              for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and _rebuildable(type(value)):
        return {"__dataclass__": f"{type(value).__module__}:{type(value).__qualname__}",
                "fields": {f.name: pack(getattr(value, f.name), f"{name}.{f.name}", tensors)
                           for f in dataclasses.fields(value) if f.init}}
    if isinstance(value, enum.Enum):
        return pack(value.value, name, tensors)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


#: Dataclasses of these packages are stored field by field and rebuilt by :func:`unpack`.
REBUILD_PACKAGES = ("theory.", "simulate.")


def _rebuildable(cls: type) -> bool:
    return cls.__module__.startswith(REBUILD_PACKAGES) and "<locals>" not in cls.__qualname__


def unpack(data: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The value that :func:`pack` stored (tuples stay tuples)."""
    if isinstance(data, list):
        return [unpack(v, tensors) for v in data]
    if isinstance(data, dict):
        if set(data) == {"__tensor__"}:
            return tensors[data["__tensor__"]]
        if set(data) == {"__tuple__"}:
            return tuple(unpack(v, tensors) for v in data["__tuple__"])
        if set(data) == {"__items__"}:
            return {unpack(k, tensors): unpack(v, tensors) for k, v in data["__items__"]}
        if set(data) == {"__dataclass__", "fields"}:
            mod, _, qual = data["__dataclass__"].partition(":")
            if not mod.startswith(REBUILD_PACKAGES):
                raise EntryError(f"refusing to rebuild {data['__dataclass__']} (not one of this project's classes)")
            cls = importlib.import_module(mod)
            for part in qual.split("."):
                cls = getattr(cls, part, None)
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise EntryError(f"refusing to rebuild {data['__dataclass__']} (not a dataclass)")
            return cls(**{k: unpack(v, tensors) for k, v in data["fields"].items()})
        return {k: unpack(v, tensors) for k, v in data.items()}
    return data


# ----------------------------------------------------------------------------- entries
def save_torch(obj: Any, path: Path | str) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (the CLI's ``--out`` files)."""
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def write_record(path: Path, record: Record, *, key: str, kind: str) -> Path:
    """Store ``record`` as one ``.npz`` entry (module docstring), atomically."""
    arrays = {}
    for name, t in record.tensors.items():
        if name == META or not torch.is_tensor(t):
            raise ValueError(f"record: tensor {name!r} must be a torch tensor with a name other than {META!r}")
        arrays[name] = t.detach().cpu().contiguous().numpy()
    head = {"format": FORMAT, "version": VERSION, "kind": kind, "key": key, "meta": record.meta}
    arrays[META] = np.frombuffer(json.dumps(head).encode(), dtype=np.uint8)
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


class EntryError(ValueError):
    """Why a cache entry cannot be used (raised by :func:`read_record`)."""


def read_record(path: Path, *, key: str, kind: str) -> Record:
    """Read one entry; raises :class:`EntryError` saying why it cannot be used."""
    with open(path, "rb") as fh:
        try:
            z = np.load(fh, allow_pickle=False)
        except Exception as exc:  # a pickle, a truncated archive, garbage
            raise EntryError(f"not a readable .npz archive ({type(exc).__name__}: {exc})") from None
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise EntryError("not a dmft-validate cache entry (a bare .npy array)")
        with z:
            return _read_archive(z, key, kind)


def _read_archive(z, key: str, kind: str) -> Record:
    try:
        head = json.loads(bytes(z[META]).decode()) if META in z.files else {}
    except Exception as exc:
        raise EntryError(f"corrupt header ({type(exc).__name__}: {exc})") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise EntryError("not a dmft-validate cache entry")
    if head.get("version") != VERSION:
        raise EntryError(f"stale format version {head.get('version')!r} (this version reads {VERSION})")
    if head.get("key") != key or head.get("kind") != kind:
        raise EntryError(f"written for another job ({head.get('kind')} {head.get('key')})")
    try:
        tensors = {n: torch.from_numpy(np.array(z[n])) for n in z.files if n != META}
    except Exception as exc:  # truncated member, bad CRC, short read, an object array
        raise EntryError(f"truncated or corrupt ({type(exc).__name__}: {exc})") from None
    return Record(tensors, head.get("meta") or {})


class Cache:
    """A cache folder (module docstring). Opening one removes the stale temporary files in it."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.removed_temps = len(clean_stale(self.folder))

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def get(self, key: str, kind: str) -> Record | None:
        """The stored record of ``key``, or None (absent, or unusable: warned and deleted)."""
        path = self.path(key)
        try:
            before = path.stat()
        except FileNotFoundError:
            return None
        try:
            return read_record(path, key=key, kind=kind)
        except EntryError as why:
            warnings.warn(f"cache: ignoring unreadable entry {path}: {why}; recomputing it", CacheWarning,
                          stacklevel=2)
            with contextlib.suppress(OSError):
                now = path.stat()
                if (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns):  # not replaced meanwhile
                    path.unlink()
            return None

    def put(self, key: str, kind: str, record: Record) -> Path:
        return write_record(self.path(key), record, key=key, kind=kind)


def info(folder: Path | str) -> dict[str, Any]:
    """What ``folder`` holds: entries by kind (count, bytes), other files, temporary files."""
    folder = Path(folder)
    out = {"folder": str(folder.resolve()), "exists": folder.is_dir(), "entries": 0, "bytes": 0,
           "kinds": {}, "other_files": 0, "other_bytes": 0, "temp_files": 0}
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        if not p.is_file():
            continue
        size = p.stat().st_size
        if is_temp(p.name):
            out["temp_files"] += 1
        elif p.suffix == SUFFIX:
            kind = _kind_of(p)
            k = out["kinds"].setdefault(kind, {"entries": 0, "bytes": 0})
            k["entries"] += 1
            k["bytes"] += size
            out["entries"] += 1
            out["bytes"] += size
        else:
            out["other_files"] += 1
            out["other_bytes"] += size
    return out


def _kind_of(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z, z.open(META + ".npy") as fh:
            arr = np.lib.format.read_array(io.BytesIO(fh.read()), allow_pickle=False)
        return str(json.loads(bytes(arr).decode()).get("kind", "?"))
    except Exception:  # an unreadable entry is still counted
        return "unreadable"


def clean(folder: Path | str) -> tuple[int, int]:
    """Remove every cache file (entries, older-format ``.pt`` files, temporary files) from ``folder``.

    Returns (files removed, bytes freed). Other files and sub-folders are left alone.
    """
    folder, n, size = Path(folder), 0, 0
    if not folder.is_dir():
        return 0, 0
    for p in folder.iterdir():
        if p.is_file() and (p.suffix in (SUFFIX, ".pt") or is_temp(p.name)):
            s = p.stat().st_size
            with contextlib.suppress(OSError):
                p.unlink()
                n, size = n + 1, size + s
    return n, size
