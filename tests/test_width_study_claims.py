"""model = "python" claim files (``dmft check``) and the pytest plugin that collects *.claims.toml."""

from __future__ import annotations

import re
import shutil
import textwrap
import tomllib
from pathlib import Path

import pytest

from validate import ClaimError, load_claims
from validate.cli import main

pytest_plugins = ("pytester",)
ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "validate.pytest_plugin"

TINY_MODELS = '''
import torch
from torch import nn

X = torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
DATA = (X, torch.tanh(X[:, 0]))


def mlp(width):
    return nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, 1)).double()


def sgd(model, width):
    return torch.optim.SGD(model.parameters(), lr=0.05)


def not_a_module(width):
    return [width]


def not_an_optimizer(model, width):
    return "sgd"
'''


def claim_text(factory="tiny_models:mlp", optimizer="tiny_models:sgd", data="tiny_models:DATA",
               tolerance="0.5", extra="", widths="[8, 16]", seeds=2) -> str:
    return textwrap.dedent(f"""\
        [[claim]]
        name = "tiny"
        kind = "width_independence"
        observables = ["loss"]
        tolerance = {tolerance}
        {extra}
        [claim.problem]
        model = "python"
        factory = "{factory}"
        optimizer = "{optimizer}"
        data = "{data}"
        steps = 2
        [claim.grid]
        widths = {widths}
        seeds = {seeds}
        """)


def write(folder: Path, text: str, name="c.claims.toml", models=True) -> Path:
    if models:
        (folder / "tiny_models.py").write_text(TINY_MODELS)
    path = folder / name
    path.write_text(text)
    return path


def line_of(text: str, key: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if re.match(rf"\s*{key}\s*=", line))


# ---------------------------------------------------------------- claim files

def test_python_claim_loads_and_decides_on_the_study(tmp_path):
    path = write(tmp_path, claim_text())
    (claim,) = load_claims(path)
    assert claim.statistic == "width_study"
    assert main(["check", str(path), "--quiet"]) in (0, 1)


@pytest.mark.parametrize("kw, field, key", [
    (dict(factory="no_such_module:mlp"), "problem.factory", "factory"),
    (dict(factory="tiny_models:nope"), "problem.factory", "factory"),
    (dict(factory="tiny_models"), "problem.factory", "factory"),
    (dict(factory="tiny_models:not_a_module"), "problem.factory", "factory"),
    (dict(optimizer="tiny_models:not_an_optimizer"), "problem.optimizer", "optimizer"),
    (dict(data="tiny_models:missing"), "problem.data", "data"),
    (dict(tolerance="{loss = 0.1, grad = 0.1}"), "tolerance", "tolerance"),
    (dict(widths="[8]"), "grid.widths", "widths"),
    (dict(extra='modules = ["nothing*"]'), "modules", "modules"),
])
def test_bad_references_name_file_line_and_field(tmp_path, kw, field, key, capsys):
    text = claim_text(**kw)
    path = write(tmp_path, text)
    with pytest.raises(ClaimError) as info:
        load_claims(path)
    msg = str(info.value)
    assert f"field '{field}'" in msg
    assert msg.startswith(f"{path}:{line_of(text, key)}:")
    assert main(["check", str(path), "--quiet"]) == 2
    assert f"field '{field}'" in capsys.readouterr().err


def test_module_next_to_the_claim_file_wins_over_sys_path(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "tiny_models.py").write_text("raise RuntimeError('the sys.path copy was imported')\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    here = tmp_path / "here"
    here.mkdir()
    (claim,) = load_claims(write(here, claim_text()))  # importing the sys.path copy would raise
    assert claim.check.problem.ref("factory").__name__ == "mlp"


def test_module_on_sys_path_is_found(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "tiny_models_on_path.py").write_text(TINY_MODELS)
    monkeypatch.syspath_prepend(str(lib))
    text = claim_text(factory="tiny_models_on_path:mlp", optimizer="tiny_models_on_path:sgd",
                      data="tiny_models_on_path:DATA")
    (claim,) = load_claims(write(tmp_path, text, models=False))
    assert claim.check.problem.ref("factory").__name__ == "mlp"


# ---------------------------------------------------------------- the pytest plugin

def test_plugin_entry_point_is_declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["pytest11"] == {PLUGIN: PLUGIN}
    import validate.pytest_plugin as plugin

    assert callable(plugin.pytest_collect_file) and callable(plugin.pytest_addoption)


def test_plugin_runs_the_example_pair_one_pass_one_fail(pytester):
    for f in ("mlp_pair.claims.toml", "width_models.py"):
        shutil.copy(ROOT / "examples" / f, pytester.path / f)
    result = pytester.runpytest("-p", PLUGIN, "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert re.search(r"mup-mlp-width-independent PASSED", out)
    assert re.search(r"standard-mlp-width-independent FAILED", out)
    # the failure report lists the failing verdict rows: the loss, per width and step
    assert "failing verdict rows" in out and "rel_diff_vs_widest" in out and "width 64" in out


def test_plugin_skips_inconclusive_claims_unless_strict(pytester):
    # one seed-noise-dominated comparison at a tolerance far below the noise
    write(pytester.path, claim_text(tolerance="1e-6", widths="[8, 9]"))
    result = pytester.runpytest("-p", PLUGIN, "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    assert "inconclusive" in result.stdout.str()
    strict = pytester.runpytest("-p", PLUGIN, "-p", "no:cacheprovider", "--dmft-strict")
    strict.assert_outcomes(failed=1)


def test_plugin_reports_a_malformed_claim_file_as_a_collection_error(pytester):
    text = claim_text(factory="no_such_module:mlp")
    path = write(pytester.path, text)
    result = pytester.runpytest("-p", PLUGIN, "-p", "no:cacheprovider")
    assert result.ret != 0
    out = result.stdout.str()
    assert f"c.claims.toml:{line_of(text, 'factory')}" in out and "problem.factory" in out
    assert "Traceback" not in out and path.exists()
