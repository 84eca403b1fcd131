"""Claim files: parsing (good and malformed, with line and field) and evaluation."""

from pathlib import Path

import pytest

from validate.checks import Breakdown, Convergence, WidthIndependence
from validate.claims import ClaimError, evaluate, load_claims
from validate.suites import load_suite_file
from validate.frame import Verdict
from validate.sources import Context
from validate_fakes import fake_solver, fake_trainer  # noqa: F401

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

GOOD = """\
[[claim]]
name = "a"
kind = "convergence"
observable = "loss"
tolerance = 0.05
[claim.problem]
depth = 2
gamma0 = 0.5
n_train = 6
input_dim = 10
steps = 10
[claim.grid]
widths = [64, 256, 1024]
seeds = 32
"""


def _write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_example_claims_parse():
    claims = load_claims(EXAMPLES / "claims.toml")
    assert [type(c.check) for c in claims] == [WidthIndependence, Breakdown, Convergence]
    assert claims[1].check.schemes == ("perturbative",) and claims[1].check.gamma0s == (0.1, 0.25)
    assert claims[2].check.widths == (64, 128, 256, 512) and claims[2].statistic == "extrapolated_residual"
    assert load_suite_file(EXAMPLES / "suite.toml").checks[0].scheme == "ntk"


@pytest.mark.parametrize("edit, line, field", [
    (lambda t: t.replace('kind = "convergence"', 'kind = "convergance"'), 3, "kind"),
    (lambda t: t.replace("tolerance = 0.05", "tolerance = -1"), 5, "tolerance"),
    (lambda t: t.replace("tolerance = 0.05\n", ""), 1, "tolerance"),
    (lambda t: t.replace("depth = 2", "depht = 2"), 7, "problem.depht"),
    (lambda t: t.replace("gamma0 = 0.5", 'gamma0 = "big"'), 8, "problem.gamma0"),
    (lambda t: t.replace("widths = [64, 256, 1024]", "widths = [0, 256]"), 13, "grid.widths"),
    (lambda t: t.replace("seeds = 32", "seed = 32"), 14, "grid.seed"),
    (lambda t: t.replace('observable = "loss"', 'observable = "lost"'), 4, "observable"),
    (lambda t: t.replace("tolerance = 0.05\n", 'tolerance = 0.05\ncolour = "red"\n'), 6, "colour"),
    (lambda t: t + 'colour = "red"\n', 15, "grid.colour"),
])
def test_malformed_claims_name_line_and_field(tmp_path, edit, line, field):
    p = _write(tmp_path, edit(GOOD))
    with pytest.raises(ClaimError) as exc:
        load_claims(p)
    msg = str(exc.value)
    assert f"{p}:{line}:" in msg and f"'{field}'" in msg, msg


def test_toml_syntax_error_names_the_line(tmp_path):
    p = _write(tmp_path, GOOD.replace("seeds = 32", "seeds = = 32"))
    with pytest.raises(ClaimError, match=r"line 14"):
        load_claims(p)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ClaimError, match="cannot read"):
        load_claims(tmp_path / "nope.toml")
    with pytest.raises(ClaimError, match=r"no \[\[claim\]\]"):
        load_claims(_write(tmp_path, "title = 'x'\n"))


def test_duplicate_names_rejected(tmp_path):
    with pytest.raises(ClaimError, match="duplicate"):
        load_claims(_write(tmp_path, GOOD + "\n" + GOOD))


def test_evaluate_adds_one_gating_row_per_claim(tmp_path):
    text = GOOD + "\n" + GOOD.replace('name = "a"', 'name = "b"').replace(
        "[claim.grid]", '[claim.options]\nscheme = "ntk"\n[claim.grid]').replace(
        "gamma0 = 0.5", "gamma0 = 1.5").replace('observable = "loss"', 'observable = "ntk"')
    claims = load_claims(_write(tmp_path, text))
    ctx = Context(trainer=fake_trainer(), solver=fake_solver, progress=False)
    res = evaluate(claims, ctx)
    gating = res.verdicts[res.verdicts["gating"]].set_index("check")
    assert list(gating.index) == ["a", "b"] and (gating["statistic"] == "claim").all()
    # the fake NTK is off by 0.04 * 1.5^2 = 9 % in its kernels: claim b fails
    assert gating.loc["a", "verdict"] == "pass" and gating.loc["b", "verdict"] == "fail"
    assert res.verdict is Verdict.FAIL


STRICT = """\
[[claim]]
name = "b"
kind = "breakdown"
observables = ["loss"]
tolerance = 0.05
[claim.problem]
depth = 2
gamma0 = 0.5
n_train = 6
input_dim = 10
steps = 10
[claim.grid]
gamma0 = [0.25, 0.5]
depth = [1, 2]
[claim.options]
z = 2.0
schemes = ["ntk"]
"""


@pytest.mark.parametrize("old, new, line, field, words", [
    # the cases of issue 10: a number for a list, coerced types, a statistic that can never decide
    ("widths = [64, 256, 1024]", "widths = 64", 13, "grid.widths", "must be a list"),
    ("widths = [64, 256, 1024]", "widths = [16.5, 32]", 13, "grid.widths", "integer"),
    ("widths = [64, 256, 1024]", 'widths = ["16", "32"]', 13, "grid.widths", "integer"),
    ("gamma0 = 0.5", 'gamma0 = "1.5"', 8, "problem.gamma0", "number"),
    ("gamma0 = 0.5", "gamma0 = true", 8, "problem.gamma0", "number"),
    ('observable = "loss"', 'observable = "loss"\nstatistic = "bogus"', 5, "statistic", "extrapolated_residual"),
    # and their neighbours
    ("seeds = 32", "seeds = 32.5", 14, "grid.seeds", "integer"),
    ("seeds = 32", "seeds = true", 14, "grid.seeds", "integer"),
    ("tolerance = 0.05", 'tolerance = "0.05"', 5, "tolerance", "number"),
    ('name = "a"', "name = 3", 2, "name", "string"),
    ('observable = "loss"', 'observables = "loss"', 4, "observables", "list of strings"),
    ("steps = 10", "steps = 10\neta = 50.0", 12, "problem.eta", "stability"),
    ("steps = 10", 'steps = 10\nactivation = "tanhh"', 12, "problem.activation", "valid names"),
    ("seeds = 32", "seeds = 32\n[claim.options]\nrate_tolerance = \"x\"", 16, "options.rate_tolerance", "number"),
    ("seeds = 32", "seeds = 32\n[claim.options]\nrate_tolrance = 0.2", 16, "options.rate_tolrance", "valid options"),
    ("seeds = 32", "seeds = 32\n[claim.options]\nwidths = [8, 16]", 16, "options.widths", "grid.widths"),
    ("seeds = 32", "seeds = 32\n[claim.options]\nsolver_options = 3", 16, "options.solver_options", "table"),
    ("[[claim]]", 'title = "x"\n[[claim]]', 1, "title", "top-level"),
])
def test_strict_claims_exit_2_naming_file_line_and_field(tmp_path, capsys, old, new, line, field, words):
    from validate.cli import main

    assert old in GOOD
    p = _write(tmp_path, GOOD.replace(old, new))
    assert main(["check", str(p), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{p}:{line}:" in err and f"field '{field}'" in err and words in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("old, new, line, field", [
    ("gamma0 = [0.25, 0.5]", "gamma0 = [0.25, true]", 13, "grid.gamma0"),  # not the problem's gamma0 (line 8)
    ("depth = [1, 2]", "depth = [1, 2.0]", 14, "grid.depth"),              # not the problem's depth (line 7)
    ("depth = [1, 2]", "depth = 2", 14, "grid.depth"),
    ("z = 2.0", 'z = "2"', 16, "options.z"),
    ("z = 2.0", "z = -1.0", 16, "options.z"),
    ('schemes = ["ntk"]', 'schemes = ["ntkk"]', 17, "options.schemes"),
    ('schemes = ["ntk"]', 'schemes = "ntk"', 17, "options.schemes"),
    ('schemes = ["ntk"]', 'schemes = ["ntk"]\nexpect = { ntk = [0.5, "x"] }', 18, "options.expect"),
    ('schemes = ["ntk"]', 'schemes = ["ntk"]\nreference = "dmfft"', 18, "options.reference"),
    ("tolerance = 0.05", 'tolerance = 0.05\nstatistic = "rel_diff_vs_widest"', 6, "statistic"),
])
def test_strict_breakdown_claims_point_at_the_grid_not_the_problem(tmp_path, old, new, line, field):
    assert old in STRICT
    load_claims(_write(tmp_path, STRICT, "ok.toml"))  # the unedited claim is valid
    p = _write(tmp_path, STRICT.replace(old, new))
    with pytest.raises(ClaimError) as exc:
        load_claims(p)
    msg = str(exc.value)
    assert f"{p}:{line}:" in msg and f"field '{field}'" in msg, msg


@pytest.mark.parametrize("old, new, line, field", [
    ("widths = [64, 128, 256]", "widths = 64", 19, "grid.widths"),
    ("gamma0 = 0.05", "gamma0 = true", 14, "problem.gamma0"),
    ('name = "example"', "name = 3", 3, "name"),
    ('name = "example"', 'name = "example"\ncolour = "red"', 4, "colour"),
])
def test_strict_suite_files(tmp_path, capsys, old, new, line, field):
    from validate.cli import main

    text = (EXAMPLES / "suite.toml").read_text()
    assert old in text
    p = _write(tmp_path, text.replace(old, new), "suite.toml")
    with pytest.raises(ClaimError) as exc:
        load_suite_file(p)
    assert f"{p}:{line}:" in str(exc.value) and f"field '{field}'" in str(exc.value), str(exc.value)
    assert main(["validate", "--suite", str(p), "--quiet", "--out", str(tmp_path / "runs")]) == 2
    assert f"{p}:{line}:" in capsys.readouterr().err


def test_claims_and_suites_do_not_import_each_other():
    import ast

    src = Path(__file__).resolve().parent.parent / "validate" / "claims.py"
    names = {n.module for n in ast.walk(ast.parse(src.read_text())) if isinstance(n, ast.ImportFrom)}
    assert not any(m and "suites" in m for m in names)
