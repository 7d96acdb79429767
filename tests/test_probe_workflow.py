"""Probe stage: unit checks of the orchestration, and an end-to-end snakemake run of a tiny config.

The end-to-end test checks that probes are their own rules after training: a changed probe
setting reruns probes and figures and never training.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from conftest import TINY_CONFIG, scheduled, snakemake, write_config
from optbias.continual import tasks as tasks_mod
from optbias.continual.benchmarks import DEFAULT_PAIRS
from optbias.probes import run as probe_run


def test_linear_probe_pairs():
    assert probe_run.linear_probe_pairs(3, "all") == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
    assert probe_run.linear_probe_pairs(3, "diagonal_and_final") == [(0, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
    assert probe_run.linear_probe_pairs(3, "final") == [(2, 0), (2, 1), (2, 2)]
    with pytest.raises(ValueError, match="diagonal_and_final"):
        probe_run.linear_probe_pairs(3, "diagonal")


def _fake_data(n_per_class: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(n_per_class)
    x = torch.randint(0, 256, (len(y), 784), generator=g, dtype=torch.uint8)
    return {"x_train": x, "y_train": y, "x_test": x.clone(), "y_test": y.clone()}


def test_probe_set_covers_every_class_and_is_fixed():
    data = _fake_data()
    for tasks in (tasks_mod.class_incremental(data, DEFAULT_PAIRS), tasks_mod.permuted(data, n_tasks=3)):
        x, y = probe_run.probe_set(tasks, per_class=4, seed=0)
        assert torch.bincount(y).tolist() == [4] * 10 and x.shape == (40, 784)
        x2, y2 = probe_run.probe_set(tasks, per_class=4, seed=0)
        assert torch.equal(x, x2) and torch.equal(y, y2)
        x3, _ = probe_run.probe_set(tasks, per_class=4, seed=1)
        assert not torch.equal(x, x3)
    # Permuted MNIST: the probe set shows the unpermuted images (task 0), at every checkpoint.
    perm = tasks_mod.permuted(data, n_tasks=3)
    x, _ = probe_run.probe_set(perm, per_class=6, seed=0)
    assert {tuple(r) for r in x.tolist()} == {tuple(r) for r in perm[0].x_test.tolist()}


def test_probe_settings_take_their_defaults_from_the_schema_and_reject_a_bad_pair_mode():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from conftest import REPO

    schema = str(REPO / "workflow/schemas/config.schema.yaml")
    config = copy.deepcopy(TINY_CONFIG)  # no probes block at all
    validate(config, schema)
    assert config["probes"] == {"probe_set_per_class": 50, "probe_set_seed": 0, "srank_delta": 0.01,
                                "ridge_lambdas": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0], "ridge_val_fraction": 0.2,
                                "ridge_split_seed": 0, "linear_probe_layers": "last", "linear_probe_pairs": {},
                                "threads": 1}
    partial = {**copy.deepcopy(TINY_CONFIG), "probes": {"probe_set_per_class": 3}}
    validate(partial, schema)
    assert partial["probes"]["probe_set_per_class"] == 3 and partial["probes"]["srank_delta"] == 0.01
    bad = {**copy.deepcopy(TINY_CONFIG), "probes": {"linear_probe_pairs": {"permuted": "some"}}}
    with pytest.raises(WorkflowError, match="some"):
        validate(bad, schema)


def _probe_config() -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    config.pop("sweep"), config.pop("ablation"), config.pop("budget")
    config["benchmarks"] = {"class_incremental": config["benchmarks"]["class_incremental"]}
    config["optimizers"] = {k: config["optimizers"][k] for k in ("sgd", "shampoo")}
    config["model"] = {"hidden": [16, 16]}
    config["probes"] = {"probe_set_per_class": 10, "ridge_lambdas": [0.1, 10.0]}
    return config


@pytest.mark.slow
def test_probe_rules_run_after_training_and_a_probe_setting_does_not_retrain(tmp_path):
    config = _probe_config()
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2", check=True)

    run = json.loads((tmp_path / "data/probes/class_incremental/shampoo/seed1/probes.json").read_text())
    metrics = json.loads((tmp_path / "data/runs/class_incremental/shampoo/seed1/metrics.json").read_text())
    assert (run["benchmark"], run["optimizer"], run["seed"]) == ("class_incremental", "shampoo", 1)
    assert run["probe_set"]["per_class"] == [10] * 10 and run["R"] == metrics["R"]
    assert len(run["representations"]) == 5 * 2 and len(run["weights"]) == 5 * 3
    for rec in run["representations"]:
        assert {"benchmark", "optimizer", "seed", "checkpoint", "after_task", "layer"} <= set(rec)
        assert 1.0 <= rec["erank"] <= 16 and 1 <= rec["srank"] <= 16 and 0 <= rec["dead_units"] <= 1
        assert len(rec["cosine_matrix"]) == 10 and rec["cosine_matrix"][3][3] == pytest.approx(1.0)
    # Class-incremental: the full lower triangle of P on the last hidden layer, next to R.
    P = run["P"]["2"]
    assert all((P[i][j] is None) == (j > i) for i in range(5) for j in range(5))
    assert all(0.5 <= P[i][i] <= 1.0 for i in range(5))  # a 2-class probe on the task just learned
    first = next(r for r in run["linear_probes"] if (r["checkpoint"], r["task"]) == (4, 0))
    assert first["head_accuracy"] == metrics["R"][4][0] and first["layer"] == 2

    summary = json.loads((tmp_path / "data/summary/probes_class_incremental.json").read_text())
    assert summary["order"] == ["sgd", "shampoo"]
    cos = summary["optimizers"]["shampoo"]["layers"]["2"]["cosine_mean_off_diagonal"]
    assert len(cos["per_seed"]) == 2 and cos["ci95"][0] <= cos["mean"] <= cos["ci95"][1]
    assert "probe_accuracy_old_tasks" in summary["optimizers"]["sgd"]["representation_forgetting"]["2"]
    assert summary["optimizers"]["sgd"]["last_layer"] == summary["optimizers"]["sgd"]["layers"]["2"]
    for stem in ("cross_class_cosine_class_incremental", "effective_rank", "probe_vs_head_accuracy",
                 "paper_figure_class_incremental"):
        assert (tmp_path / f"figures/{stem}.png").stat().st_size > 10_000
        assert (tmp_path / f"figures/{stem}.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "benchmarks/probes/class_incremental.tsv").stat().st_size > 0  # one probe job per benchmark

    # A probe setting changes: probes, their summary and figures rerun; training does not.
    config["probes"]["probe_set_per_class"] = 12
    write_config(tmp_path, config)
    proc = snakemake(tmp_path, "-n", check=True)
    jobs = scheduled(proc.stdout + proc.stderr)
    assert {"probe", "cosine_heatmaps", "summarize_probes"} <= set(jobs)
    assert "train" not in jobs
    assert "final_accuracy" not in jobs  # figures that do not read probes stay
