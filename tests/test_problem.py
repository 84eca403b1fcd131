"""theory.Problem: validation of every field, conversions, derived quantities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from theory import Problem, activation_names, gaussian_data, get_activation


@pytest.fixture
def data():
    return gaussian_data(6, 5, 3, seed=1)


def test_accepts_numpy_and_tensors_and_converts_to_float64(data):
    x, y, xt, yt = data
    p = Problem(x.numpy().astype(np.float32), list(y.numpy()), xt, yt, depth=2, activation="relu")
    assert p.x_train.dtype == torch.float64 and p.y_train.dtype == torch.float64
    assert (p.n_train, p.n_test, p.n_points, p.input_dim) == (6, 3, 9, 5)
    assert p.kx.shape == (9, 9)
    torch.testing.assert_close(p.kx, p.x_all @ p.x_all.T / 5)
    assert p.times.shape == (p.steps + 1,)
    assert p.times[1].item() == pytest.approx(p.eta)


def test_targets_as_column_vector_are_accepted(data):
    x, y, _, _ = data
    assert Problem(x, y[:, None]).y_train.shape == (6,)


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(depth=0), "depth"),
        (dict(depth=2.5), "depth"),
        (dict(steps=0), "steps"),
        (dict(gamma0=-0.1), "gamma0"),
        (dict(gamma0=float("nan")), "gamma0"),
        (dict(eta=0.0), "eta"),
        (dict(eta=-1.0), "eta"),
        (dict(eta=1e6), "eta"),  # past the stability limit
        (dict(activation="sigmoidish"), "activation"),
        (dict(activation=object()), "activation"),
    ],
)
def test_bad_parameters_raise_naming_the_field(data, change, field):
    x, y, _, _ = data
    with pytest.raises(ValueError, match=field):
        Problem(x, y, **change)


def test_unknown_activation_lists_valid_names(data):
    x, y, _, _ = data
    with pytest.raises(ValueError) as err:
        Problem(x, y, activation="swishy")
    for name in activation_names():
        assert name in str(err.value)


@pytest.mark.parametrize(
    "args, field",
    [
        (lambda x, y: (x[0], y), "x_train"),  # 1-D inputs
        (lambda x, y: (x, y[:-1]), "y_train"),  # wrong length
        (lambda x, y: (x.clone().fill_(float("inf")), y), "x_train"),
        (lambda x, y: (x, y * float("nan")), "y_train"),
        (lambda x, y: (x, y, x[:, :-1]), "x_test"),  # wrong input dimension
        (lambda x, y: (x, y, None, y), "y_test"),  # targets without inputs
        (lambda x, y: (x, y, x, y[:-1]), "y_test"),
    ],
)
def test_bad_data_raise_naming_the_field(data, args, field):
    x, y, _, _ = data
    with pytest.raises(ValueError, match=field):
        Problem(*args(x, y))


def test_stability_limit_is_twice_p_over_the_largest_lazy_ntk_eigenvalue(data):
    x, y, _, _ = data
    p = Problem(x, y, depth=2, activation="linear", eta=0.01)
    # linear network: K = (L + 1) Kx exactly (docs/theory.md section 3)
    lmax = torch.linalg.eigvalsh(3 * (x @ x.T / x.shape[1]))[-1].item()
    assert p.eta_limit() == pytest.approx(2 * 6 / lmax, rel=1e-12)
    Problem(x, y, depth=2, activation="linear", eta=0.99 * p.eta_limit())
    with pytest.raises(ValueError, match="eta"):
        Problem(x, y, depth=2, activation="linear", eta=1.01 * p.eta_limit())


def test_frozen_and_replace_revalidates(data):
    x, y, _, _ = data
    p = Problem(x, y)
    with pytest.raises(Exception):
        p.depth = 4  # type: ignore[misc]
    q = p.replace(gamma0=0.5)
    assert q.gamma0 == 0.5 and p.gamma0 == 1.0
    with pytest.raises(ValueError, match="gamma0"):
        p.replace(gamma0=-1)


def test_fingerprint_tracks_every_field(data):
    x, y, xt, yt = data
    base = Problem(x, y, xt, yt)
    assert base.fingerprint() == Problem(x.clone(), y.clone(), xt, yt).fingerprint()
    variants = [
        base.replace(gamma0=0.9),
        base.replace(eta=0.05),
        base.replace(steps=99),
        base.replace(depth=2),
        base.replace(activation="erf"),
        base.replace(x_train=x + 1e-9),
        base.replace(y_test=None),
    ]
    prints = {v.fingerprint() for v in variants}
    assert base.fingerprint() not in prints and len(prints) == len(variants)


def test_custom_activation_object_is_accepted_and_not_given_builtin_closed_forms(data):
    x, y, _, _ = data

    class Cube:
        name = "relu"  # must not borrow relu's closed form

        phi = staticmethod(lambda h: h**3)
        dphi = staticmethod(lambda h: 3 * h**2)
        ddphi = staticmethod(lambda h: 6 * h)

    act = get_activation(Cube())
    assert act.name != "relu"
    p = Problem(x, y, depth=1, activation=Cube(), eta=1e-3)
    assert math.isfinite(p.eta_limit())


def test_problems_with_builtin_activations_pickle(data):
    import pickle

    x, y, xt, yt = data
    for name in activation_names():
        p = Problem(x, y, xt, yt, activation=name, eta=0.01)
        q = pickle.loads(pickle.dumps(p))
        assert q.fingerprint() == p.fingerprint() and q.activation.name == name


@pytest.mark.parametrize("scale, field, activation", [
    (1e160, "x_train", "linear"),  # X X^T overflows to inf / nan
    (1e160, "x_train", "relu"),
    (1e60, "x_train", "tanh"),  # finite Gram matrix, but past MAX_KERNEL
    (1e160, "x_test", "tanh"),  # only the test points are extreme
])
def test_extreme_inputs_raise_value_error_naming_the_field(data, scale, field, activation):
    """Inputs scaled by 1e160 used to reach a LinAlgError in eigh (issue 10); now a ValueError."""
    x, y, xt, yt = data
    args = (x * scale, y, xt, yt) if field == "x_train" else (x, y, xt * scale, yt)
    with pytest.raises(ValueError, match=field):
        Problem(*args, depth=2, activation=activation, eta=1e-3)


def test_overflowing_lazy_kernels_raise_value_error(data):
    """A finite Gram matrix whose lazy kernels overflow (exp of large pre-activations)."""
    x, y, _, _ = data

    class Exp:
        name = "exp40"
        phi = staticmethod(lambda h: torch.exp(40 * h))
        dphi = staticmethod(lambda h: 40 * torch.exp(40 * h))
        ddphi = staticmethod(lambda h: 1600 * torch.exp(40 * h))

    with pytest.raises(ValueError, match="x_train: the lazy NTK"):
        Problem(x * 10, y, depth=1, activation=Exp(), eta=1e-3)
