"""The retention rule and the optimizers designed to remember, through the DAG on a tiny config:
OWM and Memory Shampoo are swept, tuned by the retention rule, trained, resumed and summarized like
every optimizer, and the budget rule covers only the optimizers it names."""

from __future__ import annotations

import json

from conftest import scheduled, snakemake, write_config


def knob_config(tiny_config: dict) -> dict:
    config = tiny_config
    config["seeds"] = [0]
    config["optimizers"] = {"sgd": {"type": "sgd", "lr": 0.05},
                            "owm": {"type": "owm", "lr": 0.1, "alpha": 1.0},
                            "memory-shampoo": {"type": "memory_shampoo", "lr": 0.05, "memory_power": 0.5}}
    config["sweep"]["lrs"] = {"sgd": [0.05], "owm": [0.1, 0.3]}
    config["knobs"] = {"memory-shampoo": {"option": "memory_power", "grid": [0, 0.5]},
                       "owm": {"option": "alpha", "grid": [1, 0.01]}}
    config["budget"]["seeds"] = [0]
    config["budget"]["exclude"] = ["owm", "memory-shampoo"]
    config.pop("ablation")
    return config


def test_the_retention_rule_and_the_new_optimizers_run_through_the_dag(tmp_path, tiny_config):
    write_config(tmp_path, knob_config(tiny_config))
    targets = ["data/knobs/selected.json", "data/summary/permuted.json", "data/summary/class_incremental.json",
               "data/budget/selected.json"]
    dry = snakemake(tmp_path, "-n", "--cores", "1", *targets, check=True)
    jobs = scheduled(dry.stdout)
    # 2 benchmarks x 2 tuned optimizers x 2 values, one job per candidate (both validation seeds in it),
    # but OWM at its configured alpha 1 and lr 0.1 (swept) is the sweep's cell: read, not trained again
    assert jobs["knob_train"] == 8 - 2
    # the budget rule covers sgd alone: 2 benchmarks x 2 budgets, one of them the sweep's own runs
    assert jobs["budget_validation"] <= 4 and "owm" not in dry.stdout.split("budget rule")[-1].split("\n")[0]
    snakemake(tmp_path, "--cores", "2", *targets, check=True, timeout=1200)

    selected = json.loads((tmp_path / "data/knobs/selected.json").read_text())
    knobs = selected["knobs"]
    assert set(knobs) == {"memory-shampoo", "owm"}
    assert [c["value"] for c in knobs["owm"]["candidates"]] == [1.0, 0.01]  # grid order, as configured
    for name, entry in knobs.items():
        assert entry["selected_value"] in [c["value"] for c in entry["candidates"]]
        assert entry["config_matches"] == (entry["config_value"] == entry["selected_value"])
    assert set(selected["second_protocol"]) == {"sgd", "owm"}

    assert not (tmp_path / "data/knobs/permuted/owm/1").exists()  # the twin cell: the sweep's runs served
    sweep = json.loads((tmp_path / "data/sweep/permuted/owm/lr0.1/seed1000/metrics.json").read_text())
    owm_at_1 = knobs["owm"]["candidates"][0]
    assert owm_at_1["per_seed"]["permuted"]["1000"] == sum(sweep["R_val"][-1]) / len(sweep["R_val"][-1])
    run = json.loads((tmp_path / "data/knobs/permuted/owm/0.01/seed1000/metrics.json").read_text())
    assert run["spec"]["optimizer_cfg"]["alpha"] == 0.01 and run["status"] == "ok" and "R_val" in run
    summary = json.loads((tmp_path / "data/summary/permuted.json").read_text())
    assert {"owm", "memory-shampoo"} <= set(summary["optimizers"])
    budget = json.loads((tmp_path / "data/budget/selected.json").read_text())
    assert "owm" not in json.dumps(budget) and "memory-shampoo" not in json.dumps(budget)
