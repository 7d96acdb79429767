"""Shared fixtures: a tiny workflow config and a runner for snakemake in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

TINY_CONFIG = {
    "dataset": "mnist-5k",
    "data": {"test_fraction": 0.2, "split_seed": 0},
    "seeds": [0, 1],
    "model": {"hidden": [32]},
    "benchmarks": {
        "class_incremental": {"epochs_per_task": 1, "batch_size": 64},
        "permuted": {"n_tasks": 3, "epochs_per_task": 1, "batch_size": 128, "permutation_seed": 0},
    },
    "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 5},
    "optimizers": {
        "sgd": {"type": "sgd", "lr": 0.05},
        "adam-1e-3": {"type": "adam", "lr": 1.0e-3},
        "shampoo": {"type": "shampoo", "lr": 0.05},
    },
    "sweep": {"seed": 1000, "validation_fraction": 0.1, "lrs": {"sgd": [0.01, 0.1], "shampoo-diag": [0.05]}},
    "ablation": {"base": "shampoo", "seeds": [0], "variants": {"shampoo-diag": {"optimizer": {"max_precond_dim": 1}},
                                                               "shampoo-reset": {"train": {"reset_optimizer": True}}}},
}


# A Powerprop block small enough for end-to-end tests (the experiment is in powerprop.smk).
TINY_PP = {
    "seeds": [0, 1],
    "validation_seed": 1000,
    "validation_fraction": 0.1,
    "epochs": 1,
    "batch_size": 128,
    "threads": 1,
    "device": "cpu",
    "sparsity_threshold": 1.0e-3,
    "prune_fractions": [0, 0.5, 0.9],
    "methods": {
        "sgd": {"optimizer": {"type": "sgd"}, "lrs": [0.1, 0.3]},
        "reparam-a1": {"optimizer": {"type": "sgd"}, "reparam_alpha": 1, "lrs": [0.1, 0.3]},
        "reparam-a2": {"optimizer": {"type": "sgd"}, "reparam_alpha": 2, "lrs": [1.0]},
        "ppsgd-a2": {"optimizer": {"type": "powerprop_sgd", "alpha": 2}, "lrs": [1.0]},
    },
    "equivalence": {"alphas": [2], "steps": 3, "batch_size": 16, "seed": 0,
                    "sgd_lrs": [0.04, 0.02, 0.01], "adam_lrs": [1.0e-4, 5.0e-5]},
}


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, check: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the repo's Snakefile with ``workdir`` as the working directory."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def tiny_config() -> dict:
    import copy

    return copy.deepcopy(TINY_CONFIG)
