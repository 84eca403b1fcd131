"""Claim files: parsing (good and malformed, with line and field) and evaluation."""

from pathlib import Path

import pytest

from validate.checks import Breakdown, Convergence, WidthIndependence
from validate.claims import ClaimError, evaluate, load_claims, load_suite_file
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
    (lambda t: t.replace("widths = [64, 256, 1024]", "widths = [0, 256]"), 13, "widths"),
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
