"""The run specs (optbias.specs): what each training run and Powerprop method is given, with known answers.

The specs are the training rules' params, so Snakemake reruns a run exactly when its spec changes;
these tests pin what each kind of run differs in from a headline run, and nothing more.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

sys.modules.setdefault("rfc3987_syntax", None)  # as common.smk does: jsonschema imports it (3 s) for nothing

import pytest

from conftest import TINY_PP
from optbias import config as cfgmod
from optbias import optim, specs

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"

CONFIG = {
    "dataset": "mnist-5k",
    "seeds": [0, 1],
    "model": {"hidden": [8]},
    "benchmarks": {
        "class_incremental": {"epochs_per_task": 1, "batch_size": 64},
        "permuted": {"n_tasks": 3, "epochs_per_task": 2, "batch_size": 128, "permutation_seed": 0},
    },
    "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 5},
    "optimizers": {"sgd": {"type": "sgd", "lr": 0.05}, "shampoo": {"type": "shampoo", "lr": 0.05}},
    "sweep": {"seeds": [1000, 1001], "validation_fraction": 0.1, "lrs": {"sgd": [0.01, 0.05], "shampoo": [0.1]}},
    "budget": {"validation_seeds": [1000, 1001], "validation_fraction": 0.1, "seeds": [0, 1],
               "benchmarks": {"class_incremental": {"grid": [1, 2], "level": 0.9},
                              "permuted": {"grid": [2, 4], "plateau_tolerance": 0.01}}},
    "ablation": {"base": "shampoo", "seeds": [0],
                 "variants": {"shampoo-diag": {"optimizer": {"max_precond_dim": 1}},
                              "shampoo-reset": {"train": {"reset_optimizer": True}}}},
    "noise_floor": {"batch_order": 1},
    "powerprop": copy.deepcopy(TINY_PP),
}


@pytest.fixture
def config() -> dict:
    """CONFIG as the Snakefile sees it: validated, every default of the schema filled in."""
    config = copy.deepcopy(CONFIG)
    cfgmod.validate(config, SCHEMA_PATH)
    return config


def test_a_headline_run_is_its_entry_model_benchmark_and_train_block(config):
    spec = specs.run_spec(config, "permuted", "sgd", "1")
    assert spec == {"benchmark": "permuted", "benchmark_cfg": config["benchmarks"]["permuted"], "optimizer": "sgd",
                    "optimizer_cfg": {"type": "sgd", "lr": 0.05}, "seed": 1, "model": {"hidden": [8]},
                    "train": config["train"]}
    assert list(spec) == ["benchmark", "benchmark_cfg", "optimizer", "optimizer_cfg", "seed", "model", "train"]
    assert spec["train"]["reset_optimizer"] is False and "batch_order" not in spec["train"]
    assert spec["train"] is not config["train"]  # a copy: a spec's train block never writes into the config


def test_an_ablation_variant_gets_its_overrides_and_records_divergence(config):
    diag = specs.run_spec(config, "permuted", "shampoo-diag", 0)
    assert diag["optimizer_cfg"] == {"type": "shampoo", "lr": 0.05, "max_precond_dim": 1}
    assert diag["train"] == {**config["train"], "on_divergence": "record"}
    reset = specs.run_spec(config, "permuted", "shampoo-reset", 0)
    assert reset["optimizer_cfg"] == {"type": "shampoo", "lr": 0.05}
    assert reset["train"] == {**config["train"], "on_divergence": "record", "reset_optimizer": True}
    # the base optimizer itself is a headline run: no override, divergence fails as everywhere else
    assert specs.run_spec(config, "permuted", "shampoo", 0)["train"] == config["train"]


def test_a_noise_floor_control_is_its_headline_run_plus_batch_order(config):
    control = specs.run_spec(config, "class_incremental", "sgd-reorder", 0)
    headline = specs.run_spec(config, "class_incremental", "sgd", 0)
    assert control["train"] == {**headline["train"], "batch_order": 1}
    assert list(control["train"])[-1] == "batch_order"  # added last: the other runs' specs keep their text
    assert {k: v for k, v in control.items() if k not in ("optimizer", "train")} == \
           {k: v for k, v in headline.items() if k not in ("optimizer", "train")}
    assert control["optimizer"] == "sgd-reorder"


def test_a_sweep_run_differs_from_the_run_only_in_lr_validation_fraction_and_divergence(config):
    run = specs.run_spec(config, "permuted", "shampoo", 1000)
    sweep = specs.sweep_spec(config, "permuted", "shampoo", "0.1", 1000)
    assert sweep["optimizer_cfg"] == {**run["optimizer_cfg"], "lr": 0.1}
    assert sweep["train"] == {**run["train"], "validation_fraction": 0.1, "on_divergence": "record"}
    assert {k: v for k, v in sweep.items() if k not in ("optimizer_cfg", "train")} == \
           {k: v for k, v in run.items() if k not in ("optimizer_cfg", "train")}
    assert isinstance(sweep["optimizer_cfg"]["lr"], float)  # the wildcard's text becomes a number
    assert config["optimizers"]["shampoo"]["lr"] == 0.05  # the config's entry is left as it was


def test_a_budget_run_differs_from_the_run_only_in_epochs_divergence_and_for_validation_the_split(config):
    run = specs.run_spec(config, "permuted", "sgd", 0)
    experiment = specs.budget_spec(config, "permuted", "sgd", "4", 0, validation=False)
    assert experiment["benchmark_cfg"] == {**run["benchmark_cfg"], "epochs_per_task": 4}
    assert experiment["train"] == {**run["train"], "on_divergence": "record"}
    assert "validation_fraction" not in experiment["train"]
    scored = specs.budget_spec(config, "permuted", "sgd", 4, 1000, validation=True)
    assert scored["train"] == {**run["train"], "validation_fraction": 0.1, "on_divergence": "record"}
    assert scored["seed"] == 1000 and scored["optimizer_cfg"] == run["optimizer_cfg"]
    assert config["benchmarks"]["permuted"]["epochs_per_task"] == 2  # unchanged


def test_sweep_twin_shares_a_cell_exactly_when_every_seeds_specs_are_equal(config):
    # sgd at its configured lr (0.05, swept) and the configured budget: the same runs
    assert specs.sweep_twin(config, "class_incremental", "sgd", 1) == "0.05"
    assert specs.sweep_twin(config, "permuted", "sgd", 2) == "0.05"
    # another budget: other epochs per task; shampoo: its lr 0.05 is not swept
    assert specs.sweep_twin(config, "class_incremental", "sgd", 2) is None
    assert specs.sweep_twin(config, "class_incremental", "shampoo", 1) is None

    def equal(config, benchmark, optimizer, epochs):
        lr = specs.lr_label(config["optimizers"][optimizer]["lr"])
        return all(seed in config["sweep"]["seeds"]
                   and specs.sweep_spec(config, benchmark, optimizer, lr, seed)
                   == specs.budget_spec(config, benchmark, optimizer, epochs, seed, validation=True)
                   for seed in config["budget"]["validation_seeds"])

    other_fraction = copy.deepcopy(config)
    other_fraction["budget"]["validation_fraction"] = 0.2  # the held-out split differs
    other_seed = copy.deepcopy(config)
    other_seed["budget"]["validation_seeds"] = [1000, 1002]  # 1002 is no sweep seed: not a whole cell
    for cfg in (config, other_fraction, other_seed):
        for benchmark, cell in config["budget"]["benchmarks"].items():
            for epochs in cell["grid"]:
                twin = specs.sweep_twin(cfg, benchmark, "sgd", epochs)
                assert (twin is not None) == equal(cfg, benchmark, "sgd", epochs), (benchmark, epochs)
                assert twin in (None, "0.05")
    assert specs.sweep_twin(other_fraction, "class_incremental", "sgd", 1) is None
    assert specs.sweep_twin(other_seed, "class_incremental", "sgd", 1) is None


def test_sweep_twin_is_none_for_an_entry_without_lr_and_reads_lr_labels(config):
    no_lr = copy.deepcopy(config)
    del no_lr["optimizers"]["sgd"]["lr"]
    assert specs.sweep_twin(no_lr, "class_incremental", "sgd", 1) is None
    written = copy.deepcopy(config)
    written["sweep"]["lrs"]["sgd"] = ["5e-2"]  # another spelling of the same rate
    assert specs.sweep_twin(written, "class_incremental", "sgd", 1) == "0.05"


def test_knob_twin_shares_the_retention_rules_cell_at_the_configured_value_only(config):
    """The retention rule's runs at the entry's own knob value are the sweep's runs at its own rate."""
    cfg = copy.deepcopy(config)
    cfg["optimizers"]["sgd"]["momentum"] = 0.5  # sgd (swept at its lr 0.05) with a momentum knob
    cfg["knobs"] = {"sgd": {"option": "momentum", "grid": [0.0, 0.5]}}
    cfgmod.validate(cfg, SCHEMA_PATH)
    for benchmark in ("class_incremental", "permuted"):
        assert specs.knob_twin(cfg, benchmark, "sgd", 0.5) == "0.05"
        assert specs.knob_twin(cfg, benchmark, "sgd", "5e-1") == "0.05"  # another spelling of the value
        assert specs.knob_twin(cfg, benchmark, "sgd", 0.0) is None  # another value: other runs
        for seed in cfg["sweep"]["seeds"]:  # what sharing rests on: the same spec, seed by seed
            assert (specs.sweep_spec(cfg, benchmark, "sgd", "0.05", seed)
                    == specs.knob_spec(cfg, benchmark, "sgd", 0.5, seed))
    unswept = copy.deepcopy(cfg)
    unswept["sweep"]["lrs"]["sgd"] = [0.01]  # the sweep does not try the configured rate
    assert specs.knob_twin(unswept, "permuted", "sgd", 0.5) is None


def test_expected_cost_is_runs_times_passes_times_step_cost(config):
    assert specs.expected_cost(config, "class_incremental", "sgd", 3) == 3.0  # 3 runs x 1 epoch x cost 1
    assert specs.expected_cost(config, "permuted", "sgd", 2) == 12.0  # 2 x (3 tasks x 2 epochs)
    assert specs.expected_cost(config, "permuted", "sgd", 2, epochs="5") == 30.0  # 2 x (3 x 5)
    shampoo = optim.relative_step_cost("shampoo")
    assert shampoo > 1
    assert specs.expected_cost(config, "permuted", "shampoo-diag", 1) == 6 * shampoo  # a variant costs as its type
    assert specs.expected_cost(config, "permuted", "sgd-reorder", 1) == 6.0


def test_a_powerprop_spec_is_its_method_the_shared_settings_and_the_model(config):
    spec = specs.powerprop_spec(config, "reparam-a2")
    assert spec["name"] == "reparam-a2" and spec["model_cfg"] == {"hidden": [8]}
    assert spec["method"] == {"optimizer": {"type": "sgd"}, "reparam_alpha": 2, "lrs": [1.0]}
    assert spec["cfg"] == {k: v for k, v in config["powerprop"].items() if k not in ("methods", "equivalence")}
    assert spec["cfg"]["seeds"] == [0, 1] and "methods" not in spec["cfg"] and "equivalence" not in spec["cfg"]


def test_job_seeds_and_lr_labels(config):
    assert config["seed_jobs"] == "together"  # the schema's default
    assert specs.job_seeds(config, ["0", 1]) == [0, 1]
    assert specs.job_seeds(config, [0, 1], "1") == [0, 1]  # together: the whole list, whatever the wildcard
    config["seed_jobs"] = "separate"
    assert specs.job_seeds(config, [0, 1], "1") == [1]
    with pytest.raises(ValueError, match="seed_jobs: separate"):
        specs.job_seeds(config, [0, 1])
    assert [specs.lr_label(x) for x in (0.1, "0.1", 1e-1, "1e-5", 3e-4, 1)] == ["0.1", "0.1", "0.1", "1e-05",
                                                                                "0.0003", "1"]


def test_what_a_config_lacks_raises_key_error(config):
    with pytest.raises(KeyError):
        specs.run_spec(config, "permuted", "lion", 0)
    with pytest.raises(KeyError):
        specs.run_spec(config, "split", "sgd", 0)
    bare = copy.deepcopy(config)
    for block in ("sweep", "budget", "powerprop"):
        del bare[block]
    with pytest.raises(KeyError):
        specs.sweep_spec(bare, "permuted", "sgd", 0.1, 1000)
    with pytest.raises(KeyError):
        specs.budget_spec(bare, "permuted", "sgd", 2, 1000, validation=True)
    assert specs.budget_spec(bare, "permuted", "sgd", 2, 0, validation=False)["train"]["on_divergence"] == "record"
    with pytest.raises(KeyError):
        specs.powerprop_spec(bare, "sgd")


def test_the_specs_import_no_torch():
    """common.smk builds the specs while Snakemake parses the Snakefile: that must stay fast."""
    code = "import sys, optbias.specs; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"]
