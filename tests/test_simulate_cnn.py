"""simulate.cnn: the Fig. 4 CNN in the mean-field parameterisation (docs/theory.md sections 1, 7)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from simulate.cnn import CNNConfig, cnn_features, cnn_output, init_cnn, minibatches, train_cnn
from simulate.data import Dataset, digits


@pytest.fixture(scope="module")
def data() -> Dataset:
    return digits((0, 1), seed=0, n_train=200)


def _reference_output(params, x, S, gamma0):
    """Each network on its own, from the formulas (no grouped convolution)."""
    N = params[-1].shape[1]
    outs = []
    for i in range(S):
        sl = slice(i * N, (i + 1) * N)
        h = F.conv2d(x, params[0][sl], padding=1) / math.sqrt(x.shape[1] * 9)
        for W in params[1:-1]:
            h = F.conv2d(torch.relu(h), W[sl], padding=1) / math.sqrt(N * 9)
        phibar = torch.relu(h).mean((2, 3))
        outs.append(phibar @ params[-1][i] / (gamma0 * N))
    return torch.stack(outs, 1)


def test_batched_forward_equals_per_network_reference(data):
    cfg = CNNConfig(channels=6, depth=3, seeds=3, seed=4)
    params = init_cnn(1, cfg)
    x = data.x_train[:7]
    with torch.no_grad():
        f, _ = cnn_output(params, x, 3, 0.7)
        torch.testing.assert_close(f, _reference_output(params, x, 3, 0.7), rtol=1e-12, atol=1e-14)
    # weights of seed i do not depend on the other seeds of the batch
    alone = init_cnn(1, CNNConfig(channels=6, depth=3, seeds=1, seed=5))
    for p, q in zip(params[:-1], alone[:-1]):
        torch.testing.assert_close(p[6:12], q)
    torch.testing.assert_close(params[-1][1], alone[-1][0])


def test_first_layer_has_inverse_sqrt_fan_in():
    """E[h^1(pixel)^2] over channels = |3x3 patch|^2 / (9 C): O(1) for O(1) pixels."""
    C, N = 3, 4000
    x = torch.randn(2, C, 5, 5, dtype=torch.float64)
    params = init_cnn(C, CNNConfig(channels=N, depth=1, seeds=1))
    with torch.no_grad():
        h = F.conv2d(x, params[0], padding=1) / math.sqrt(9 * C)  # the model's first layer
        patch = F.unfold(x, 3, padding=1).pow(2).sum(1).reshape(2, 5, 5) / (9 * C)
        ratio = h.pow(2).mean(1) / patch
        assert (ratio - 1).abs().max() < 5 * math.sqrt(2 / N)  # chi-square with N degrees
        # readout: pooled relu features, f ~ 1 / (gamma0 sqrt N)
        feats = cnn_features(params, x, 1)
        assert feats.shape == (2, 1, N) and (feats >= 0).all()


def test_minibatches_cover_the_full_training_set_every_epoch():
    seen = {}
    sizes = []
    for epoch, idx in minibatches(289, 64, 3, data_seed=1):
        seen.setdefault(epoch, []).append(idx)
        sizes.append(len(idx))
    for epoch, parts in seen.items():
        assert torch.equal(torch.sort(torch.cat(parts)).values, torch.arange(289))
    assert sizes[:5] == [64, 64, 64, 64, 33]


def test_training_learns_features_and_seeds_reproduce(data):
    base = dict(channels=16, depth=2, eta=2.0, batch_size=50, epochs=6, eval_every=6)
    run = train_cnn(data, CNNConfig(gamma0=1.0, seeds=2, seed=0, **base))
    lazy = train_cnn(data, CNNConfig(gamma0=0.1, seeds=2, seed=0, **base))
    y = data.y_test
    assert run.step[0] == 0 and run.step[-1] == 24 and run.info["steps_per_epoch"] == 4
    # centred output: nothing predicted at step 0
    torch.testing.assert_close(run.test_mse[:, 0], (y**2).mean().expand(2))
    torch.testing.assert_close(run.test_error[:, 0], torch.full((2,), 0.5, dtype=torch.float64))
    assert (run.test_error[:, -1] < 0.1).all() and (run.test_mse[:, -1] < 0.7).all()
    # feature learning: alignment of the last-layer kernel grows O(gamma0^2) faster at gamma0 = 1
    gain, lazy_gain = run.alignment[:, -1] - run.alignment[:, 0], lazy.alignment[:, -1] - lazy.alignment[:, 0]
    assert (gain > 10 * lazy_gain.abs()).all() and (gain > 0.05).all()
    assert not run.diverged.any()
    one = train_cnn(data, CNNConfig(gamma0=1.0, seeds=1, seed=1, **base))
    for name in ("test_mse", "test_error", "alignment", "train_loss"):
        torch.testing.assert_close(getattr(one, name)[0], getattr(run, name)[1], rtol=1e-9, atol=1e-12, equal_nan=True)


def test_divergence_and_bad_config(data):
    run = train_cnn(data, CNNConfig(channels=8, depth=2, gamma0=1.0, eta=5000.0, batch_size=50, epochs=3,
                                    eval_every=1, seeds=2))
    assert run.diverged.all() and (run.diverged_step >= 0).all()
    for i in range(2):
        late = run.step >= run.diverged_step[i]
        assert torch.isnan(run.test_mse[i, late]).all() and torch.isfinite(run.test_mse[i, ~late]).all()
    with pytest.raises(ValueError, match="lr_scaling"):
        CNNConfig(lr_scaling="ntk")
    with pytest.raises(ValueError, match="gamma0"):
        CNNConfig(gamma0=0.0)
    with pytest.raises(ValueError, match="channels"):
        CNNConfig(channels=0)
    with pytest.raises(ValueError, match="decay_start"):
        CNNConfig(decay_start=1.5)
    with pytest.raises(ValueError, match="data"):
        train_cnn(Dataset(x_train=torch.ones(3, 4), y_train=torch.ones(3)), CNNConfig())


def test_learning_rate_schedule_constant_then_linear_decay(data):
    cfg = CNNConfig(channels=4, gamma0=2.0, eta=0.1, decay_start=0.5)
    lr = 0.1 * 2.0**2 * 4
    assert [cfg.lr_at(k, 10) for k in (0, 4)] == [lr, lr]
    assert [cfg.lr_at(k, 10) for k in (5, 6, 8, 9)] == pytest.approx([lr, 0.8 * lr, 0.4 * lr, 0.2 * lr])
    assert [CNNConfig(channels=4, decay_start=0.0).lr_at(k, 4) for k in range(4)] == pytest.approx(
        [c * CNNConfig(channels=4).lr for c in (1.0, 0.75, 0.5, 0.25)])
    assert CNNConfig(channels=4).lr_at(99, 100) == CNNConfig(channels=4).lr
    # the schedule reaches the optimiser: same start, different end
    base = dict(channels=8, depth=2, eta=2.0, batch_size=50, epochs=2, eval_every=1, seeds=1)
    const = train_cnn(data, CNNConfig(**base))
    decayed = train_cnn(data, CNNConfig(decay_start=0.0, **base))
    torch.testing.assert_close(const.test_mse[:, :2], decayed.test_mse[:, :2])
    assert float(const.test_mse[0, -1]) != float(decayed.test_mse[0, -1])
