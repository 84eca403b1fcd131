"""CNN width independence: CNNSpec validation, claim parsing (model = "cnn"), a tiny real run,
the observables' reduction against the CNN runs, and the disk cache."""

from pathlib import Path

import numpy as np
import pytest
import torch

from validate.checks import CNNWidthIndependence
from validate.checks.cnn_width import cnn_runs, cnn_scalar
from validate.claims import ClaimError, evaluate, load_claims
from validate.suites import load_suite_file
from validate.cnn_spec import CNNSpec
from validate.frame import Verdict
from simulate.cache import info as cache_info
from validate.sources import Context

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CNN = """\
[[claim]]
name = "cnn"
kind = "width_independence"
observables = ["test_mse", "test_error_mean"]
tolerance = 0.5
[claim.problem]
model = "cnn"
data = "digits"
classes = [0, 1]
n_train = 48
n_test = 32
depth = 1
gamma0 = 1.0
eta = 2.0
batch_size = 16
epochs = 1
[claim.grid]
widths = [4, 8]
seeds = 4
"""


def _write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_cnn_claim_parses(tmp_path):
    (c,) = load_claims(_write(tmp_path, CNN))
    assert isinstance(c.check, CNNWidthIndependence) and c.statistic == "rel_diff_vs_widest"
    assert c.check.widths == (4, 8) and c.check.seeds == 4
    assert c.check.problem == CNNSpec(n_train=48, n_test=32, depth=1, eta=2.0, batch_size=16, epochs=1)
    (ex,) = load_claims(EXAMPLES / "cnn_claims.toml")
    assert isinstance(ex.check, CNNWidthIndependence) and ex.check.widths == (64, 256)
    suite = load_suite_file(_write(tmp_path, CNN.replace("[[claim]]", "[[check]]").replace("[claim.", "[check.")))
    assert isinstance(suite.checks[0], CNNWidthIndependence) and suite.checks[0].observables[1] == "test_error_mean"


@pytest.mark.parametrize("edit, line, field", [
    (lambda t: t.replace("depth = 1", "depth = 0"), 12, "problem.depth"),
    (lambda t: t.replace('data = "digits"', 'data = "mnist"'), 8, "problem.data"),
    (lambda t: t.replace("classes = [0, 1]", "classes = [3, 3]"), 9, "problem.classes"),
    (lambda t: t.replace("eta = 2.0", "eta = -1.0"), 14, "problem.eta"),
    (lambda t: t.replace("epochs = 1", "epochs = 1.5"), 16, "problem.epochs"),
    (lambda t: t.replace("batch_size = 16", "batch = 16"), 15, "problem.batch"),
    (lambda t: t.replace('"test_error_mean"', '"ntk"'), 4, "observables"),
    (lambda t: t.replace("widths = [4, 8]", "widths = [4, 0]"), 18, "grid.widths"),
    (lambda t: t.replace("seeds = 4", "seeds = 1"), 19, "grid.seeds"),
    (lambda t: t.replace('kind = "width_independence"', 'kind = "convergence"'), 7, "problem.model"),
    (lambda t: t.replace('kind = "width_independence"', 'kind = "cnn_width_independence"').replace(
        'model = "cnn"', 'model = "mlp"'), 7, "problem.model"),
])
def test_malformed_cnn_claims_name_line_and_field(tmp_path, edit, line, field):
    p = _write(tmp_path, edit(CNN))
    with pytest.raises(ClaimError) as exc:
        load_claims(p)
    msg = str(exc.value)
    assert f"{p}:{line}:" in msg and f"'{field}'" in msg, msg


def test_cnn_claim_runs_and_yields_verdict_rows(tmp_path):
    claims = load_claims(_write(tmp_path, CNN))
    ctx = Context(progress=False, cache_dir=tmp_path / "cache")
    res = evaluate(claims, ctx)
    v = res.verdicts
    claim = v[v["gating"]]
    assert list(claim["statistic"]) == ["claim"] and claim["verdict"].iloc[0] in {x.value for x in Verdict}
    rows = v[v["statistic"] == "rel_diff_vs_widest"]
    assert sorted(rows["observable"]) == ["test_error_mean", "test_mse"] and (rows["width"] == 4).all()
    assert (v["statistic"] == "rel_diff_fixed_gamma").sum() == 2
    assert ((v["time"] == 1.0) | v["time"].isna()).all()
    # trained: N=4 and N=8 at gamma0, N=8 at gamma = gamma0 sqrt(4) (N=4 is the same network)
    assert ctx.stats["trained"] == 3 and cache_info(tmp_path / "cache")["kinds"]["cnn"]["entries"] == 3

    # the measurements are the ensemble statistics of the runs themselves (independent reduction)
    runs = cnn_runs(ctx, claims[0].check.problem, 8, 4)
    m = res.measurements.set_index(["observable", "source", "width"])
    ok = ~runs["diverged"]
    assert m.loc[("test_mse", "fixed_gamma0", 8), "value"] == pytest.approx(
        float(runs["test_mse"][ok, -1].mean()), rel=1e-12)
    assert m.loc[("test_error_mean", "fixed_gamma0", 8), "value"] == pytest.approx(
        float(runs["test_error"][ok, 1:].mean()), rel=1e-12)

    # a rerun in a fresh context reads every ensemble from the disk cache
    ctx2 = Context(progress=False, cache_dir=tmp_path / "cache")
    res2 = evaluate(claims, ctx2)
    assert ctx2.stats == {"solves": 0, "trained": 0, "cache_hits": 3}
    np.testing.assert_array_equal(res2.measurements["value"], res.measurements["value"])


def test_cnn_scalar_drops_diverged_seeds_and_aliases():
    runs = {"test_mse": torch.tensor([[1.0, 0.5, 0.25], [1.0, 2.0, float("nan")], [1.0, 0.7, 0.1]]),
            "diverged": torch.tensor([False, True, False])}
    np.testing.assert_allclose(cnn_scalar(runs, "test_loss"), [0.25, 0.1])
    np.testing.assert_allclose(cnn_scalar(runs, "test_mse_mean"), [0.375, 0.4])


@pytest.mark.parametrize("kw, field", [
    (dict(model="mlp"), "model"), (dict(data="gaussian"), "data"), (dict(data="cifar10"), "root"),
    (dict(classes=(0, 10)), "classes"), (dict(gamma0=0.0), "gamma0"), (dict(n_probe=1), "n_probe"),
    (dict(lr_scaling="ntk"), "lr_scaling"), (dict(decay_start=-0.1), "decay_start"),
])
def test_cnnspec_errors_name_the_field(kw, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        CNNSpec(**kw)


def test_cnnspec_schedule_reaches_the_trainer():
    assert CNNSpec(decay_start=0.5).config(8, 2).decay_start == 0.5
    assert CNNSpec().config(8, 2).decay_start == 1.0
