"""The larger configs (config/paper.yaml, fashion.yaml, extended.yaml): schema and DAG in a dry run, and the
fashion-mnist data path end to end on IDX files this test writes (the full run is `make fashion`)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from conftest import REPO, TINY_CONFIG, scheduled, snakemake, write_config
from test_data import write_idx


@pytest.mark.parametrize("name", ["paper", "fashion", "extended"])
def test_larger_config_builds_its_dag_without_data(tmp_path, name):
    """`snakemake -n --configfile config/<name>.yaml` validates the merged config and lists every
    training job, without downloading or reading any data."""
    (tmp_path / "config").mkdir()
    for f in ("config.yaml", f"{name}.yaml"):
        shutil.copy(REPO / "config" / f, tmp_path / "config" / f)
    proc = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(tmp_path / "config" / f"{name}.yaml"),
                     check=True, timeout=300)
    jobs = scheduled(proc.stdout + proc.stderr)
    default = len(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["optimizers"])
    headline = default + 3 if name == "extended" else default  # extended: Muon, SOAP and PSGD-Kron join
    assert jobs["train"] == 2 * headline and jobs["sweep_train"] > 0 and jobs["budget_validation"] > 0, jobs
    assert jobs["fetch"] == 1 and jobs["audit"] == 1
    assert not (tmp_path / "data").exists()  # a dry run fetches nothing
    if name == "fashion":
        assert "fetch fashion-mnist" in proc.stdout + proc.stderr


def test_fashion_mnist_runs_through_the_pipeline(tmp_path):
    """A tiny slice of `make fashion`: the fashion-mnist source (gzipped IDX files, as Debian ships
    them, written here: 40 training and 10 test images per class) -> fetch -> both benchmarks."""
    idx = tmp_path / "idx"
    idx.mkdir()
    rng = np.random.default_rng(0)
    labels = {"train": np.repeat(np.arange(10), 40), "t10k": np.repeat(np.arange(10), 10)}
    for split, y in labels.items():
        x = rng.integers(0, 256, size=(len(y), 28, 28)) // (1 + y[:, None, None])  # classes differ in brightness
        write_idx(idx / f"{split}-images-idx3-ubyte.gz", x, compress=True)
        write_idx(idx / f"{split}-labels-idx1-ubyte.gz", y, compress=True)
    config = {**TINY_CONFIG, "dataset": "fashion-mnist", "data": {"fashion_dir": str(idx)}}
    workdir = tmp_path / "run"
    write_config(workdir, config)
    targets = [f"data/runs/{b}/sgd/seed0/metrics.json" for b in ("class_incremental", "permuted")]
    snakemake(workdir, "--cores", "2", *targets, check=True)
    manifest = json.loads((workdir / "data/raw/fashion-mnist.pt.manifest.json").read_text())
    assert manifest["dataset"] == "fashion-mnist" and manifest["n_train"] == 400 and manifest["n_test"] == 100
    assert manifest["train_class_counts"] == [40] * 10
    for target, n_tasks in zip(targets, (5, 3)):
        run = json.loads((workdir / target).read_text())
        assert run["status"] == "ok" and len(run["R"]) == n_tasks and run["spec"]["seed"] == 0
        assert run["steps"] == (5 * 1 * 2 if n_tasks == 5 else 3 * 4)  # 80 images per pair at 64; 400 at 128


def test_follow_key_order_keeps_the_reference_order_and_values():
    """Known answer: the keys an override put first go back to the reference's place, nested mappings
    too; keys the reference lacks follow in their own order; values and lists are untouched."""
    from optbias.config import follow_key_order

    reference = {"data": {"test_fraction": 0.2, "split_seed": 0},
                 "optimizers": {"sgd": {"type": "sgd", "lr": 0.1}, "adamw": {"type": "adamw", "lr": 1e-3}}}
    merged = {"optimizers": {"adamw": {"lr": 3e-4, "type": "adamw"}, "muon": {"type": "muon"},
                             "sgd": {"type": "sgd", "lr": 0.1}},
              "data": {"fashion_dir": "/x", "test_fraction": 0.2, "split_seed": 0}, "seeds": [3, 1, 2]}
    expected = {"optimizers": {"sgd": {"type": "sgd", "lr": 0.1}, "adamw": {"type": "adamw", "lr": 3e-4},
                               "muon": {"type": "muon"}},
                "data": {"test_fraction": 0.2, "split_seed": 0, "fashion_dir": "/x"}, "seeds": [3, 1, 2]}
    follow_key_order(merged, reference)
    assert merged == expected
    assert json.dumps(merged) == json.dumps({"data": expected["data"], "optimizers": expected["optimizers"],
                                             "seeds": [3, 1, 2]})  # the order itself, not only the values


def test_a_configfile_override_keeps_config_yaml_optimizer_order(tmp_path):
    """`--configfile` with one optimizer's lr (as config/fashion.yaml sets adamw's): Snakemake merges
    that file's keys first, and before the fix that put the overridden optimizer first in legends and
    in the pairs the claims name ('adamw~sgd' where claim C9d reads 'sgd~adamw'). The order shows in
    the config check's list of known optimizers."""
    optimizers = {name: TINY_CONFIG["optimizers"][name] for name in ("shampoo", "sgd", "adam-1e-3")}  # not the repo's order
    write_config(tmp_path, {**TINY_CONFIG, "optimizers": optimizers,
                            "sweep": {**TINY_CONFIG["sweep"], "lrs": {"nosuch": [0.1]}}})
    override = tmp_path / "override.yaml"
    override.write_text("optimizers:\n  adam-1e-3: {lr: 3.0e-4}\n")
    proc = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(override), timeout=300)
    assert proc.returncode != 0
    assert "sweep.lrs: 'nosuch' is not an optimizer or ablation variant; known: shampoo, sgd, adam-1e-3, " \
           "shampoo-diag, shampoo-reset" in proc.stdout + proc.stderr, proc.stderr[-2000:]
