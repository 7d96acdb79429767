"""Data loaders on small files the tests write themselves, plus the embedded mnist-5k."""

import gzip
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from optbias import data, fileio


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """MNIST IDX: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian dims, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def make_idx_dir(tmp_path, n_train=20, n_test=10, compress=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for name, array in arrays.items():
        write_idx(tmp_path / (name + (".gz" if compress else "")), array, compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_idx_dir_reads_what_was_written(tmp_path, compress):
    arrays = make_idx_dir(tmp_path, compress=compress)
    loaded, digest = data.load_idx_dir(tmp_path)
    assert loaded["x_train"].shape == (20, 784) and loaded["x_train"].dtype == torch.uint8
    assert np.array_equal(loaded["x_train"].numpy(), arrays["train-images-idx3-ubyte"].reshape(20, 784))
    assert loaded["y_test"].tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert len(digest) == 64


def test_idx_dir_missing_file_names_it(tmp_path):
    make_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte"):
        data.load_idx_dir(tmp_path)


def test_idx_dir_mismatched_lengths(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5))
    with pytest.raises(data.DataError, match="20 images but 5 labels"):
        data.load_idx_dir(tmp_path)


def test_csv_loader_and_stratified_split(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    table = np.column_stack([rng.integers(0, 256, size=(100, 784)), labels])
    path = tmp_path / "tiny.csv.gz"
    with gzip.open(path, "wt") as f:
        np.savetxt(f, table, fmt="%d", delimiter=",")
    loaded = data.load_mnist_csv(path, test_fraction=0.2, split_seed=3)
    assert len(loaded["y_train"]) == 80 and len(loaded["y_test"]) == 20
    assert torch.bincount(loaded["y_test"]).tolist() == [2] * 10  # stratified
    # every row lands in exactly one split, with its own label
    rows = {tuple(r): int(l) for r, l in zip(table[:, :784].astype(int), labels)}
    for split in ("train", "test"):
        for x, y in zip(loaded[f"x_{split}"].tolist(), loaded[f"y_{split}"].tolist()):
            assert rows[tuple(x)] == y
    again = data.load_mnist_csv(path, test_fraction=0.2, split_seed=3)
    assert torch.equal(again["x_test"], loaded["x_test"])  # seeded


def test_csv_with_wrong_columns_is_rejected(tmp_path):
    path = tmp_path / "bad.csv"
    np.savetxt(path, np.zeros((3, 10)), delimiter=",")
    with pytest.raises(data.DataError, match="785 columns"):
        data.load_mnist_csv(path)


def test_embedded_mnist_5k_fetch_and_verified_load(tmp_path):
    out = tmp_path / "mnist-5k.pt"
    manifest = data.fetch("mnist-5k", out, {"test_fraction": 0.2, "split_seed": 0})
    assert manifest["source_sha256"] == data.MNIST_5K_SHA256
    assert manifest["n_train"] == 4000 and manifest["n_test"] == 1000
    assert manifest["train_class_counts"] == [400] * 10 and manifest["test_class_counts"] == [100] * 10
    loaded = data.load(out)
    assert loaded["x_train"].dtype == torch.uint8 and loaded["x_train"].shape == (4000, 784)
    assert int(loaded["x_train"].max()) == 255
    assert json.loads(data.manifest_path(out).read_text())["sha256"] == fileio.sha256_file(out)
    # deterministic: a second fetch gives the same bytes
    out2 = tmp_path / "again.pt"
    data.fetch("mnist-5k", out2, {"test_fraction": 0.2, "split_seed": 0})
    assert fileio.sha256_file(out2) == fileio.sha256_file(out)


def test_corrupted_file_fails_its_checksum_with_refetch_hint(tmp_path):
    out = tmp_path / "d.pt"
    (tmp_path / "idx").mkdir()
    make_idx_dir(tmp_path / "idx")
    data.fetch("idx-dir", out, {"idx_dir": str(tmp_path / "idx")})
    payload = bytearray(out.read_bytes())
    payload[-10] ^= 0xFF
    out.write_bytes(bytes(payload))
    with pytest.raises(data.DataError, match="fails its checksum.*forcerun fetch"):
        data.load(out)


def test_missing_manifest_and_unknown_dataset(tmp_path):
    out = tmp_path / "d.pt"
    torch.save({}, out)
    with pytest.raises(data.DataError, match="no manifest"):
        data.load(out)
    with pytest.raises(data.DataError, match="known datasets: fashion-mnist, idx-dir, mnist, mnist-5k"):
        data.fetch("cifar", out)


def test_mnist_download_failure_names_offline_alternatives(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(data.DataError, match="mnist-5k.*idx-dir"):
        data.fetch("mnist", tmp_path / "m.pt", {"download_dir": str(tmp_path)})


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    fileio.atomic_write_json(target, {"a": 1})

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", boom)
    with pytest.raises(OSError):
        fileio.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        fileio.atomic_write_bytes(tmp_path / "figure.png", b"x")
        assert (tmp_path / "figure.png").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600
    finally:
        os.umask(umask)


def test_fashion_mnist_reads_gzipped_idx_from_its_directory(tmp_path):
    """The fashion-mnist source on IDX files this test writes (gzipped, as Debian ships them)."""
    (tmp_path / "fashion").mkdir()
    arrays = make_idx_dir(tmp_path / "fashion", compress=True)
    manifest = data.fetch("fashion-mnist", tmp_path / "fashion.pt", {"fashion_dir": str(tmp_path / "fashion")})
    assert manifest["dataset"] == "fashion-mnist" and manifest["n_train"] == 20 and manifest["n_test"] == 10
    loaded = data.load(tmp_path / "fashion.pt")
    assert np.array_equal(loaded["x_test"].numpy(), arrays["t10k-images-idx3-ubyte"].reshape(10, 784))
    assert loaded["y_train"].tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_fashion_mnist_missing_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", str(tmp_path / "not-installed"))
    with pytest.raises(data.DataError, match=r"apt-get install dataset-fashion-mnist.*data\.fashion_dir"):
        data.fetch("fashion-mnist", tmp_path / "f.pt", {})


@pytest.mark.skipif(not Path(data.FASHION_MNIST_DIR).is_dir() and not os.environ.get("OPTBIAS_REQUIRE_FASHION"),
                    reason="dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist); "
                           "make test installs it and sets OPTBIAS_REQUIRE_FASHION, so there this runs")
def test_fashion_mnist_of_the_debian_package_is_full_size():
    """make test installs dataset-fashion-mnist: the default location holds the whole dataset."""
    loaded, digest = data.load_idx_dir(data.FASHION_MNIST_DIR)
    assert len(loaded["y_train"]) == 60_000 and len(loaded["y_test"]) == 10_000
    assert loaded["x_train"].shape == (60_000, 784) and loaded["y_train"].bincount().tolist() == [6000] * 10


def test_every_source_has_a_display_name():
    """Figure titles name the data ("MNIST", "Fashion-MNIST"); a new source needs its name."""
    assert set(data.DISPLAY_NAMES) == set(data.SOURCES)
    assert data.DISPLAY_NAMES["fashion-mnist"] == "Fashion-MNIST" and data.DISPLAY_NAMES["mnist-5k"] == "MNIST"
