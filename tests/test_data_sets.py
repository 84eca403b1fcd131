"""simulate.data: Gaussian, CIFAR-10 (torchvision's folder layout, generated here) and digits."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from theory.data import gaussian_data
from simulate.data import CIFAR10_CLASSES, Dataset, cifar10, digits, gaussian


def write_cifar_folder(root, n_per_batch=6, seed=0):
    """A tiny folder in the layout torchvision reads: cifar-10-batches-py/{data_batch_1..5,
    test_batch, batches.meta}; each batch a latin1-readable pickle of uint8 rows (3072 = CHW)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 4, size=n_per_batch)]
        entry = {"batch_label": name, "labels": labels, "data": data,
                 "filenames": [f"{name}_{i}.png" for i in range(n_per_batch)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh)
        written[name] = (data, np.array(labels))
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": n_per_batch, "num_vis": 3072}, fh)
    return written


def test_cifar_loader_reads_generated_folder(tmp_path):
    written = write_cifar_folder(tmp_path)
    ds = cifar10(tmp_path, classes=("bird", 1), standardize=False, verify=False)
    train = [written[f"data_batch_{i}"] for i in range(1, 6)]
    data = np.concatenate([d for d, _ in train]); labels = np.concatenate([l for _, l in train])
    keep = (labels == 2) | (labels == 1)
    expect = torch.as_tensor(data[keep].reshape(-1, 3, 32, 32) / 255.0)
    assert ds.x_train.shape == expect.shape and ds.x_train.dtype == torch.float64
    torch.testing.assert_close(ds.x_train, expect, rtol=0, atol=0)
    torch.testing.assert_close(ds.y_train, torch.as_tensor(np.where(labels[keep] == 2, 1.0, -1.0)))
    tdata, tlabels = written["test_batch"]
    tkeep = (tlabels == 2) | (tlabels == 1)
    assert ds.n_test == int(tkeep.sum())
    torch.testing.assert_close(ds.x_test, torch.as_tensor(tdata[tkeep].reshape(-1, 3, 32, 32) / 255.0))
    assert ds.info["classes"] == ["bird", "automobile"]


def test_cifar_subsample_standardize_and_integrity(tmp_path):
    write_cifar_folder(tmp_path, n_per_batch=10)
    ds = cifar10(tmp_path, (0, 3), n_train=7, n_test=2, seed=4, verify=False)
    again = cifar10(tmp_path, (0, 3), n_train=7, n_test=2, seed=4, verify=False)
    assert ds.x_train.shape == (7, 3, 32, 32) and ds.x_test.shape == (2, 3, 32, 32)
    assert torch.equal(ds.x_train, again.x_train) and set(ds.y_train.tolist()) <= {1.0, -1.0}
    torch.testing.assert_close(ds.x_train.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(ds.x_train.std((0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-12, rtol=0)
    p = ds.problem(depth=2, activation="relu", gamma0=1.0, eta=0.1, steps=5)
    assert p.input_dim == 3072 and p.n_train == 7 and p.n_test == 2
    # torchvision's md5 check rejects a folder that is not the official archive
    with pytest.raises(RuntimeError, match="verify=False"):
        cifar10(tmp_path, (0, 3))
    with pytest.raises(RuntimeError, match="download"):
        cifar10(tmp_path / "missing", (0, 3), verify=False)
    with pytest.raises(ValueError, match="n_train"):
        cifar10(tmp_path, (0, 3), n_train=10_000, verify=False)
    with pytest.raises(ValueError, match="classes"):
        cifar10(tmp_path, ("cat", "cat"), verify=False)
    with pytest.raises(ValueError, match="classes"):
        cifar10(tmp_path, ("cat", "zebra"), verify=False)


def test_digits_offline_two_classes():
    ds = digits((3, 8), n_train=40, n_test=20, seed=1)
    assert ds.x_train.shape == (40, 1, 8, 8) and ds.x_test.shape == (20, 1, 8, 8)
    assert set(ds.y_train.tolist()) == {1.0, -1.0}
    from sklearn.datasets import load_digits

    b = load_digits()
    raw = digits((3, 8), seed=1, standardize=False)
    n3, n8 = int((b.target == 3).sum()), int((b.target == 8).sum())
    assert raw.n_train + raw.n_test == n3 + n8
    assert int((raw.y_train == 1).sum() + (raw.y_test == 1).sum()) == n3
    # every returned image is one of the bundled images of its class
    imgs = {tuple(np.round(im.ravel() / 16.0, 12)) for im, t in zip(b.images, b.target) if t == 3}
    pos = raw.x_train[raw.y_train == 1].reshape(-1, 64).numpy()
    assert all(tuple(np.round(r, 12)) in imgs for r in pos)


def test_gaussian_matches_theory_data_and_dataset_validation():
    ds = gaussian(5, 7, 3, seed=2)
    x, y, xt, yt = gaussian_data(5, 7, 3, seed=2)
    assert torch.equal(ds.x_train, x) and torch.equal(ds.y_test, yt)
    with pytest.raises(ValueError, match="y_test"):
        Dataset(x_train=x, y_train=y, x_test=xt)
    with pytest.raises(ValueError, match="x_train"):
        Dataset(x_train=x[:3], y_train=y)
    with pytest.raises(ValueError, match="NaN"):
        Dataset(x_train=x * float("nan"), y_train=y)
