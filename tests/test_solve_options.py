"""``theory.solve``'s keyword options: one documented set for every method (issue 10, item 3).

Options of another method are accepted and ignored; typos are rejected with the valid list; a
bad ``device`` or ``dtype`` is a ValueError naming the field, whichever method would run."""

from __future__ import annotations

import pytest
import torch

from theory import Problem, gaussian_data, solve

MC_FAST = dict(samples=200, response_samples=4, max_iterations=2, average_iterations=0, march="never")


def _problem(activation="linear", gamma0=1.0):
    x, y, xt, yt = gaussian_data(4, 6, 1, seed=3)
    return Problem(x, y, xt, yt, depth=2, activation=activation, gamma0=gamma0, eta=0.1, steps=4)


@pytest.mark.parametrize("activation, gamma0, scheme", [
    ("linear", 1.0, "dmft"),  # exact linear solver: Monte Carlo options do not apply
    ("linear", 1.0, "perturbative"),
    ("tanh", 0.0, "dmft"),  # gamma0 = 0: the lazy closed form
    ("tanh", 1.0, "ntk"),
])
def test_options_of_another_method_are_accepted_and_ignored(activation, gamma0, scheme):
    pr = _problem(activation, gamma0)
    plain = solve(pr, scheme)
    other = solve(pr, scheme, samples=16, damping=0.5, seed=7, response_samples=2, warmup=(),
                  threads=1, blowup=1e6, control_variate="lazy")
    assert other.status is plain.status
    assert torch.equal(other.loss, plain.loss) and torch.equal(other.phi[-1], plain.phi[-1])


def test_linear_options_are_ignored_by_the_monte_carlo_solver():
    pr = _problem("tanh")
    a = solve(pr, **MC_FAST)
    b = solve(pr, threads=2, blowup=10.0, **MC_FAST)
    assert torch.equal(a.loss, b.loss)


@pytest.mark.parametrize("activation, gamma0", [("linear", 1.0), ("tanh", 1.0), ("tanh", 0.0)])
def test_unknown_option_is_rejected_with_the_valid_list(activation, gamma0):
    with pytest.raises(TypeError) as err:
        solve(_problem(activation, gamma0), sampels=100)
    msg = str(err.value)
    assert "sampels" in msg
    from theory import SOLVE_OPTIONS as OPTIONS

    for name in OPTIONS:
        assert name in msg


@pytest.mark.parametrize("activation, gamma0", [("linear", 1.0), ("tanh", 1.0), ("tanh", 0.0)])
@pytest.mark.parametrize("bad, field", [
    (dict(device="gpu"), "device"),
    (dict(device=3.5), "device"),
    (dict(dtype="float64"), "dtype"),
    (dict(dtype=torch.int32), "dtype"),
    (dict(dtype=torch.float16), "dtype"),
])
def test_bad_device_or_dtype_is_a_value_error_naming_the_field(activation, gamma0, bad, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        solve(_problem(activation, gamma0), **bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_a_value_error():
    with pytest.raises(ValueError, match="device: CUDA was requested"):
        solve(_problem("tanh"), device="cuda")


def test_every_option_is_documented_in_the_docstring():
    from theory import SOLVE_OPTIONS as OPTIONS

    for name, opt in OPTIONS.items():
        assert name in solve.__doc__ and opt.methods
