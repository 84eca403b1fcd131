"""The one cache (simulate.cache, simulate.identity): never unpickles, discards bad entries with one
warning line and recomputes them, keys cover custom code, survives killed and concurrent runs."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from simulate.atomic import clean_stale, temp_path
from simulate.cache import META, Cache, CacheWarning, EntryError, Record, clean, info, pack, read_record, unpack
from simulate.identity import Uncacheable, digest, problem_identity
from theory import Activation, Problem
from theory.data import gaussian_data
from validate.checks import Convergence
from validate.sources import Context
from validate.spec import ProblemSpec
from validate_fakes import fake_solver, fake_trainer

ROOT = Path(__file__).resolve().parent.parent
SPEC = ProblemSpec(n_train=5, n_test=2, input_dim=8, depth=2, gamma0=0.5, steps=6)


def _check():
    return Convergence(problem=SPEC, widths=(32, 64), seeds=4, observables=("loss", "ntk"))


def _ctx(cache):
    return Context(trainer=fake_trainer(), solver=fake_solver, progress=False, cache_dir=cache)


def _entries(cache):
    return sorted(cache.glob("*.npz"))


class Marker:
    """Unpickling this creates ``path`` (what a hostile cache file could do)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_payload_in_the_cache_is_never_run(tmp_path):
    cache = tmp_path / "cache"
    first = _check().run(_ctx(cache))
    a, b = _entries(cache)
    marker_a, marker_b = tmp_path / "ran_a", tmp_path / "ran_b"
    a.write_bytes(pickle.dumps({"loss": Marker(marker_a)}))  # a bare pickle named like an entry
    # an archive with a valid header and an object array whose unpickling would run code
    with np.load(b, allow_pickle=False) as z:
        head = np.array(z[META])
    with open(b, "wb") as fh:
        np.savez(fh, **{META: head, "loss": np.array([Marker(marker_b)], dtype=object)})
    ctx = _ctx(cache)
    with pytest.warns(CacheWarning) as got:
        again = _check().run(ctx)
    assert not marker_a.exists() and not marker_b.exists()
    messages = [str(w.message) for w in got]
    assert len(messages) == 2 and all(sum(str(p) in m for m in messages) == 1 for p in (a, b))
    assert ctx.stats["trained"] == 2 and ctx.stats["cache_hits"] == 0  # both recomputed
    np.testing.assert_allclose(again.verdicts["estimate"], first.verdicts["estimate"], rtol=0, atol=1e-12)


def test_truncated_entry_one_warning_line_then_recomputed_and_intact_rerun_trains_nothing(tmp_path):
    cache = tmp_path / "cache"
    _check().run(_ctx(cache))
    victim = _entries(cache)[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    ctx = _ctx(cache)
    with pytest.warns(CacheWarning) as got:
        _check().run(ctx)
    (w,) = got
    msg = str(w.message)
    assert str(victim) in msg and "\n" not in msg and "recomputing" in msg
    assert ctx.stats == {"solves": 1, "trained": 1, "cache_hits": 1}
    ctx = _ctx(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check().run(ctx)
    assert ctx.stats == {"solves": 1, "trained": 0, "cache_hits": 2}


@pytest.mark.parametrize("change, why", [
    (lambda h: {**h, "version": 1}, "stale format version 1"),
    (lambda h: {**h, "format": "something-else"}, "not a dmft-validate cache entry"),
    (lambda h: {**h, "key": "0" * 40}, "another job"),
])
def test_foreign_and_stale_entries_are_discarded(tmp_path, change, why):
    cache = tmp_path / "cache"
    _check().run(_ctx(cache))
    victim = _entries(cache)[0]
    with np.load(victim, allow_pickle=False) as z:
        arrays = {n: np.array(z[n]) for n in z.files}
    head = change(json.loads(bytes(arrays[META]).decode()))
    arrays[META] = np.frombuffer(json.dumps(head).encode(), dtype=np.uint8)
    with open(victim, "wb") as fh:
        np.savez(fh, **arrays)
    ctx = _ctx(cache)
    with pytest.warns(CacheWarning, match=why):
        _check().run(ctx)
    assert ctx.stats["trained"] == 1 and ctx.stats["cache_hits"] == 1


def test_read_record_rejects_garbage_and_round_trips(tmp_path):
    c = Cache(tmp_path)
    rec = Record({"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([True, False])}, {"x": 1.5})
    c.put("k" * 40, "unit", rec)
    back = read_record(c.path("k" * 40), key="k" * 40, kind="unit")
    assert back.meta == {"x": 1.5} and torch.equal(back.tensors["a"], rec.tensors["a"])
    assert back.tensors["b"].dtype == torch.bool
    with pytest.raises(EntryError, match="another job"):
        read_record(c.path("k" * 40), key="k" * 40, kind="other")
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 100)
    with pytest.raises(EntryError, match="readable"):
        read_record(tmp_path / "junk.npz", key="x", kind="unit")


def test_pack_round_trips_nested_info():
    info = {"standard_error": {"phi": (0.1, 0.2), "g": [torch.ones(2)]}, "history": [{"r": 1.0, "ok": True}],
            "status": None, "n": np.int64(3), 5: "int key"}
    tensors = {}
    data = pack(info, "info", tensors)
    json.dumps(data)  # plain JSON
    back = unpack(data, tensors)
    assert back["standard_error"]["phi"] == (0.1, 0.2) and isinstance(back["standard_error"]["phi"], tuple)
    assert torch.equal(back["standard_error"]["g"][0], torch.ones(2)) and back["n"] == 3 and back[5] == "int key"


def test_pack_rebuilds_project_dataclasses_only():
    tensors = {}
    rec = Record({"a": torch.ones(3)}, {"m": 1})
    back = unpack(json.loads(json.dumps(pack({"r": rec}, "x", tensors))), tensors)["r"]
    assert isinstance(back, Record) and torch.equal(back.tensors["a"], torch.ones(3)) and back.meta == {"m": 1}
    forged = {"__dataclass__": "os:system", "fields": {}}  # a file naming any other callable is refused
    with pytest.raises(EntryError, match="refusing"):
        unpack(forged, {})
    with pytest.raises(EntryError, match="not a dataclass"):
        unpack({"__dataclass__": "theory.solve:solve", "fields": {}}, {})


# ----------------------------------------------------------------------------- identity in the key
def _act(scale):
    def phi(h):
        return torch.tanh(scale * h)

    def dphi(h):
        return scale * (1 - torch.tanh(scale * h) ** 2)

    def ddphi(h):
        t = torch.tanh(scale * h)
        return -2 * scale**2 * t * (1 - t**2)

    return Activation("mine", phi, dphi, ddphi)


def _problem(act):
    x, y, _, _ = gaussian_data(4, 3, 0, seed=1)
    return Problem(x, y, depth=1, activation=act, gamma0=1.0, eta=0.1, steps=3)


def test_two_custom_activations_with_one_name_get_different_keys():
    one, two, one_again = _problem(_act(1.0)), _problem(_act(2.0)), _problem(_act(1.0))
    assert one.fingerprint() == two.fingerprint()  # what the theory's fingerprint alone cannot tell
    assert problem_identity(one) != problem_identity(two)
    assert problem_identity(one) == problem_identity(one_again)
    ctx = Context(solver=fake_solver, trainer=fake_trainer())
    assert ctx.network_job(one, 8, 2).key() != ctx.network_job(two, 8, 2).key()
    assert ctx.network_job(one, 8, 2).key() == ctx.network_job(one_again, 8, 2).key()
    assert ctx.theory_job(one).key() != ctx.theory_job(two).key()
    # other code, same name: the bytecode differs
    other = Activation("mine", torch.sin, torch.cos, lambda h: -torch.sin(h))
    assert problem_identity(_problem(other)) != problem_identity(one)


def test_key_changes_with_every_part_of_the_specification():
    p = _problem("tanh")
    ctx = Context(solver=fake_solver, trainer=fake_trainer())
    base = ctx.network_job(p, 8, 2).key()
    variants = [ctx.network_job(p, 9, 2), ctx.network_job(p, 8, 3), ctx.network_job(p, 8, 2, two_time=True),
                ctx.network_job(p.replace(eta=0.05), 8, 2), Context(trainer=fake_trainer(noise=2.0)).network_job(p, 8, 2),
                Context(seed=1, trainer=fake_trainer()).network_job(p, 8, 2),
                Context(device="cuda", trainer=fake_trainer()).network_job(p, 8, 2)]
    keys = {v.key() for v in variants}
    assert base not in keys and len(keys) == len(variants)
    sol = {ctx.theory_job(p, "dmft", samples=100).key(), ctx.theory_job(p, "dmft", samples=200).key(),
           ctx.theory_job(p, "gia", samples=100).key(), Context().theory_job(p, "dmft", samples=100).key()}
    assert len(sol) == 4


def test_uncacheable_code_is_not_cached_with_a_warning(tmp_path):
    class Opaque:  # no __dict__, no code to read
        __slots__ = ()

        def __call__(self, *a, **k):
            return fake_trainer()(*a, **k)

    with pytest.raises(Uncacheable):
        digest(Opaque())
    ctx = Context(trainer=Opaque(), solver=fake_solver, progress=False, cache_dir=tmp_path / "c")
    with pytest.warns(UserWarning, match="not caching results of trainer"):
        Convergence(problem=SPEC, widths=(32, 64), seeds=4, observables=("loss",)).run(ctx)
    assert ctx.stats["trained"] == 2 and not list((tmp_path / "c").glob("*.npz"))


# ----------------------------------------------------------------------------- killed and concurrent runs
def test_stale_temp_files_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = temp_path(tmp_path / f"{'a' * 40}.npz", pid=dead.pid)
    live = temp_path(tmp_path / f"{'b' * 40}.npz")
    old = tmp_path / f".{'c' * 40}.npz.otherhost.123.00ff00ff.tmp"
    fresh_foreign = tmp_path / f".{'d' * 40}.npz.otherhost.123.00ff00ff.tmp"
    for p in (stale, live, old, fresh_foreign):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    assert len(clean_stale(tmp_path)) == 2
    assert not stale.exists() and not old.exists() and live.exists() and fresh_foreign.exists()


WRITER = """
import sys, torch
from simulate.cache import Cache, Record
c = Cache(sys.argv[1])
n = int(sys.argv[2])
for i in range(60):
    for k in ("a" * 40, "b" * 40):
        c.put(k, "unit", Record({"x": torch.full((200, 200), float(n))}, {"writer": n}))
        got = c.get(k, "unit")
        assert got is not None and got.tensors["x"].shape == (200, 200), "read a broken entry"
print("ok")
"""


def test_two_processes_sharing_a_folder_never_corrupt_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-W", "error", "-c", WRITER, str(tmp_path), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for n in (1, 2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and out.strip() == "ok", err
    c = Cache(tmp_path)
    for k in ("a" * 40, "b" * 40):
        rec = c.get(k, "unit")
        assert rec.meta["writer"] in (1, 2) and torch.all(rec.tensors["x"] == rec.meta["writer"])
    assert not list(tmp_path.glob("*.tmp")) and info(tmp_path)["entries"] == 2


def test_info_and_clean(tmp_path):
    cache = tmp_path / "cache"
    _check().run(_ctx(cache))
    (cache / "old.pt").write_bytes(b"legacy")
    (cache / "keep.txt").write_text("not ours")
    i = info(cache)
    assert i["entries"] == 2 and i["kinds"] == {"ensemble": {"entries": 2, "bytes": i["bytes"]}}
    assert i["other_files"] == 2
    n, freed = clean(cache)
    assert n == 3 and freed > 0 and (cache / "keep.txt").exists() and info(cache)["entries"] == 0
