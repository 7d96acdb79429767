"""The retention rule (optbias.continual.knobs) on runs whose answer is known by hand."""

from __future__ import annotations

import pytest

from optbias.continual import knobs

PAIRS = {"epochs_per_task": 1, "batch_size": 8}  # class-incremental pairs: chance 0.5


def run(value, seed, last_row, learning, benchmark="class_incremental", status="ok", option="memory_power",
        name="memory-shampoo", lr=0.03):
    return {"optimizer": name, "benchmark": benchmark, "seed": seed, "status": status,
            "R_val": [[learning, 0.0], last_row], "validation_score": learning,
            "spec": {"optimizer_cfg": {"type": "memory_shampoo", "lr": lr, option: value}, "benchmark_cfg": PAIRS}}


KNOB = {"memory-shampoo": {"option": "memory_power", "grid": [0, 0.5, 1.0]}}


def test_the_score_is_the_held_out_average_accuracy_after_the_last_task():
    assert knobs.retention_score(run(0.5, 1000, [0.4, 0.9], 0.95)) == pytest.approx(0.65)
    assert knobs.retention_score(run(0.5, 1000, [0.4, 0.9], 0.95, status="diverged")) == 0.0


def test_the_best_mean_over_seeds_wins_and_the_config_is_checked():
    runs = [run(0.0, 1000, [0.0, 1.0], 0.99), run(0.0, 1001, [0.0, 1.0], 0.99),      # score 0.5
            run(0.5, 1000, [0.6, 0.9], 0.97), run(0.5, 1001, [0.4, 0.9], 0.97),      # score 0.7
            run(1.0, 1000, [0.9, 0.8], 0.90), run(1.0, 1001, [0.9, 0.6], 0.90)]      # score 0.8
    out = knobs.select(runs, KNOB, {"memory-shampoo": 1.0})["memory-shampoo"]
    assert [c["score"] for c in out["candidates"]] == pytest.approx([0.5, 0.7, 0.8])
    assert out["selected_value"] == 1.0 and out["config_matches"] and out["edge_of_grid"]
    assert out["candidates"][2]["learning_accuracy"] == {"class_incremental": pytest.approx(0.9)}
    assert not knobs.select(runs, KNOB, {"memory-shampoo": 0.5})["memory-shampoo"]["config_matches"]


def test_a_tie_goes_to_the_candidate_listed_first_the_weaker_memory():
    runs = [run(v, s, [0.5, 0.9], 0.97) for v in (1.0, 0.5) for s in (1000, 1001)]
    out = knobs.select(runs, {"memory-shampoo": {"option": "memory_power", "grid": [0.5, 1.0]}}, {})
    assert out["memory-shampoo"]["selected_value"] == 0.5 and not out["memory-shampoo"]["config_matches"]


def test_a_candidate_that_did_not_learn_or_diverged_cannot_be_chosen():
    runs = [run(0.0, s, [0.0, 1.0], 0.99) for s in (1000, 1001)]  # 0.5, learned
    runs += [run(1.0, s, [1.0, 1.0], 0.60) for s in (1000, 1001)]  # 1.0, but 0.60 < 0.75: did not learn
    runs += [run(0.5, 1000, [0.9, 0.9], 0.99), run(0.5, 1001, [0.9, 0.9], 0.99, status="diverged")]
    out = knobs.select(runs, KNOB, {})["memory-shampoo"]
    by_value = {c["value"]: c for c in out["candidates"]}
    assert by_value[1.0]["learned"] is False and not by_value[1.0]["eligible"]
    assert by_value[0.5]["diverged_seeds"] == ["class_incremental/seed1001"] and not by_value[0.5]["eligible"]
    assert out["selected_value"] == 0.0 and out["selected_eligible"]


def test_scores_average_over_seeds_then_benchmarks():
    permuted = {"epochs_per_task": 1, "batch_size": 8, "n_tasks": 2}
    runs = [run(0.5, 1000, [0.6, 0.8], 0.97), run(0.5, 1001, [0.8, 0.8], 0.97)]  # pairs: 0.75
    for seed, row in ((1000, [0.5, 0.5]), (1001, [0.7, 0.7])):  # permuted: 0.6
        r = run(0.5, seed, row, 0.9, benchmark="permuted")
        r["spec"]["benchmark_cfg"] = permuted
        runs.append(r)
    out = knobs.select(runs, {"memory-shampoo": {"option": "memory_power", "grid": [0.5]}}, {})["memory-shampoo"]
    assert out["candidates"][0]["per_benchmark"] == pytest.approx({"class_incremental": 0.75, "permuted": 0.6})
    assert out["candidates"][0]["score"] == pytest.approx(0.675)


def test_the_second_protocol_scores_the_learning_rate_sweep_by_retention():
    runs = [run(0.5, s, [0.1, 1.0], 0.99, name="sgd", lr=0.1) for s in (1000, 1001)]  # 0.55
    runs += [run(0.5, s, [0.5, 0.9], 0.95, name="sgd", lr=0.01) for s in (1000, 1001)]  # 0.7
    out = knobs.second_protocol(runs, {"sgd": 0.1})["sgd"]
    assert [c["lr"] for c in out["candidates"]] == [0.01, 0.1]
    assert out["retention_lr"] == 0.01 and out["plasticity_lr"] == 0.1 and not out["same"]


def test_a_knob_tunes_only_what_the_entry_sets():
    assert knobs.with_option({"type": "owm", "lr": 0.1, "alpha": 1.0}, "alpha", "0.01") == {
        "type": "owm", "lr": 0.1, "alpha": 0.01}
    with pytest.raises(KeyError, match="has no 'alpha' to tune"):
        knobs.with_option({"type": "owm", "lr": 0.1}, "alpha", 0.01)
    assert knobs.value_label(1e-3) == "0.001" and knobs.value_label("1") == "1"


# ---- the rule's runs (optbias.specs.knob_spec) and the config's knobs block (optbias.config.check_knobs)

def knob_config() -> dict:
    import copy

    from test_specs import CONFIG, SCHEMA_PATH

    from optbias import config as cfgmod
    config = copy.deepcopy(CONFIG)
    config["optimizers"]["owm"] = {"type": "owm", "lr": 0.1, "alpha": 1.0}
    config["knobs"] = {"owm": {"option": "alpha", "grid": [10, 1, 0.1]}}
    cfgmod.validate(config, SCHEMA_PATH)
    return config


def test_an_entry_that_takes_another_optimizers_rate_passes_when_the_two_agree():
    from optbias import config as cfgmod
    config = knob_config()
    config["knobs"]["owm"]["lr_of"] = "sgd"
    config["optimizers"]["owm"]["lr"] = config["optimizers"]["sgd"]["lr"]
    config["sweep"]["lrs"].pop("owm", None)
    cfgmod.check(config)  # raises on a mismatch (test_a_bad_knobs_block_is_named_with_its_fix)


def test_a_knob_run_is_a_sweep_run_with_the_option_set_and_the_entry_lr_kept():
    from optbias import specs
    config = knob_config()
    spec = specs.knob_spec(config, "permuted", "owm", "0.1", 1000)
    headline = specs.run_spec(config, "permuted", "owm", 1000)
    assert spec["optimizer_cfg"] == {"type": "owm", "lr": 0.1, "alpha": 0.1}
    assert spec["train"] == {**headline["train"], "validation_fraction": 0.1, "on_divergence": "record"}
    assert {k: v for k, v in spec.items() if k not in ("optimizer_cfg", "train")} == {
        k: v for k, v in headline.items() if k not in ("optimizer_cfg", "train")}


@pytest.mark.parametrize("change, message", [
    (lambda c: c["knobs"].update(nope={"option": "alpha", "grid": [1, 2]}), r"knobs.nope: not an optimizer"),
    (lambda c: c["knobs"]["owm"].update(option="beta"), r"does not set 'beta'; add `beta: <the rule's choice>`"),
    (lambda c: c["optimizers"]["owm"].update(alpha=0.5), r"optimizers.owm.alpha is 0.5, not a value of knobs.owm.grid"),
    (lambda c: c.pop("sweep"), r"knobs: the retention rule runs on the sweep's validation seeds"),
    (lambda c: c["budget"].update(exclude=["lion"]), r"budget.exclude: \['lion'\] are not optimizers"),
    (lambda c: c["knobs"]["owm"].update(lr_of="lion"), r"knobs.owm.lr_of: 'lion' is not an optimizer"),
    (lambda c: c["knobs"]["owm"].update(lr_of="sgd"), r"optimizers.owm.lr is 0.1, but knobs.owm.lr_of says it takes "
                                                       r"optimizers.sgd.lr, 0.05: set it to that"),
    (lambda c: (c["knobs"]["owm"].update(lr_of="sgd"), c["optimizers"]["owm"].update(lr=0.05),
                c["sweep"]["lrs"].update(owm=[0.1, 0.3])), r"takes sgd's learning rate, so it is not swept"),
])
def test_a_bad_knobs_block_is_named_with_its_fix(change, message):
    from optbias import config as cfgmod
    config = knob_config()
    change(config)
    with pytest.raises(cfgmod.ConfigError, match=message):
        cfgmod.check(config)


@pytest.mark.parametrize("entry, message", [
    ({"type": "owm", "lr": 0.1, "alpha": 0}, r"optimizers.bad: OWM: invalid alpha=0; allowed: a number > 0"),
    ({"type": "owm", "lr": 0.1, "alpha_final": 0.01}, r"alpha_final and schedule_steps go together"),
    ({"type": "memory_shampoo", "lr": 0.03, "memory_power": 2}, r"invalid memory_power=2; allowed: a number in \[0, 1\]"),
])
def test_a_bad_option_value_of_a_new_optimizer_stops_the_config_check_before_any_job(entry, message):
    """The config check (at parse time, torch-free) runs the optimizer's own option checks."""
    import subprocess
    import sys
    from optbias import config as cfgmod
    config = knob_config()
    config["optimizers"]["bad"] = entry
    with pytest.raises(cfgmod.ConfigError, match=message):
        cfgmod.check(config)
    code = "import sys, optbias.optim.checks as c; c.owm({'alpha': 1.0}); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_grid_value_without_runs_is_an_error_not_a_smaller_grid():
    runs = [run(0.0, s, [0.5, 0.9], 0.97) for s in (1000, 1001)]
    with pytest.raises(KeyError, match=r"no run of the candidates \[0.5, 1.0\]"):
        knobs.select(runs, KNOB, {})


@pytest.mark.parametrize("grid, message", [
    ([10, 1, -0.1], r"knobs.owm.grid: the candidate -0.1 is not a valid alpha: .*invalid alpha=-0.1"),
    ([1, 1.0000001], r"print alike"),
])
def test_a_bad_grid_is_named_before_any_job(grid, message):
    from optbias import config as cfgmod
    config = knob_config()
    config["knobs"]["owm"]["grid"] = grid
    with pytest.raises(cfgmod.ConfigError, match=message):
        cfgmod.check(config)
