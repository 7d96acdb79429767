"""The budget rule and the multi-seed learning-rate rule, on hand-made validation runs with known answers."""

from __future__ import annotations

import copy
import json

import pytest

from conftest import TINY_CONFIG
from optbias import config as cfg
from optbias.continual import budget, sweep
from optbias.paper import claims as C


def val_run(benchmark: str, optimizer: str, epochs: int, seed: int, score: float | None) -> dict:
    """A budget-rule run: only what the rule reads (score None = diverged)."""
    return {"benchmark": benchmark, "optimizer": optimizer, "seed": seed, "spec": {"benchmark_cfg": {"epochs_per_task": epochs}},
            "status": "ok" if score is not None else "diverged", "validation_score": score}


def runs_from(table: dict, benchmark: str = "b") -> list[dict]:
    """``{optimizer: {epochs: [score per seed]}}`` -> validation runs on seeds 1000, 1001, ..."""
    return [val_run(benchmark, o, e, 1000 + k, s) for o, by_e in table.items() for e, scores in by_e.items()
            for k, s in enumerate(scores)]


def test_level_rule_picks_the_smallest_budget_every_optimizer_meets():
    # sgd reaches 0.95 (mean of seeds) at 2 epochs, adam only at 5: the budget is 5.
    table = {"sgd": {1: [0.90, 0.92], 2: [0.96, 0.95], 5: [0.97, 0.97]},
             "adam": {1: [0.70, 0.72], 2: [0.94, 0.95], 5: [0.96, 0.95]}}
    out = budget.select_budget(runs_from(table), {"b": {"grid": [5, 1, 2], "level": 0.95}}, {"b": 5}, ["sgd", "adam"])["b"]
    assert out["grid"] == [1, 2, 5] and out["selected_epochs"] == 5 and out["level_reached"] is True
    assert out["config_matches"] is True
    at2 = out["candidates"][1]
    assert at2["epochs"] == 2 and at2["optimizers"]["sgd"]["meets"] and not at2["optimizers"]["adam"]["meets"]
    assert at2["optimizers"]["adam"]["score"] == pytest.approx(0.945)
    assert at2["optimizers"]["adam"]["per_seed"] == {"1000": 0.94, "1001": 0.95}


def test_plateau_rule_compares_with_the_optimizers_own_score_at_the_largest_budget():
    # sgd's plateau is 0.80 (at 4): 0.795 at 2 is within 0.01; adam's plateau 0.90: 0.885 at 2 is not.
    table = {"sgd": {1: [0.70, 0.70], 2: [0.79, 0.80], 4: [0.80, 0.80]},
             "adam": {1: [0.80, 0.80], 2: [0.88, 0.89], 4: [0.90, 0.90]}}
    out = budget.select_budget(runs_from(table), {"b": {"grid": [1, 2, 4], "plateau_tolerance": 0.01}}, {"b": 1},
                               ["sgd", "adam"])["b"]
    assert [c["all_meet"] for c in out["candidates"]] == [False, False, True]
    assert out["selected_epochs"] == 4 and out["config_matches"] is False and out["level_reached"] is True
    assert out["edge_of_grid"] is True  # a plateau choice at the largest budget: learning may still rise
    table["adam"][2] = [0.895, 0.895]
    out = budget.select_budget(runs_from(table), {"b": {"grid": [1, 2, 4], "plateau_tolerance": 0.01}}, {"b": 2},
                               ["sgd", "adam"])["b"]
    assert out["selected_epochs"] == 2 and out["config_matches"] is True and out["edge_of_grid"] is False


def test_a_level_nobody_reaches_picks_the_largest_budget_and_says_so_and_a_diverged_seed_scores_zero():
    table = {"sgd": {1: [0.99, None], 2: [0.99, 0.99]}, "adam": {1: [0.5, 0.5], 2: [0.6, 0.6]}}
    out = budget.select_budget(runs_from(table), {"b": {"grid": [1, 2], "level": 0.9}}, {"b": 2}, ["sgd", "adam"])["b"]
    assert out["selected_epochs"] == 2 and out["level_reached"] is False and out["config_matches"] is True
    sgd1 = out["candidates"][0]["optimizers"]["sgd"]
    assert sgd1["score"] == pytest.approx(0.495) and sgd1["diverged_seeds"] == [1001]


def test_a_partial_grid_or_a_bad_criterion_is_an_error():
    table = {"sgd": {1: [0.9, 0.9]}}
    with pytest.raises(ValueError, match=r"no validation run for \[\('sgd', 2\)\]"):
        budget.select_budget(runs_from(table), {"b": {"grid": [1, 2], "level": 0.9}}, {"b": 1}, ["sgd"])
    table = {"sgd": {1: [0.9, 0.9], 2: [0.9]}}  # one validation seed missing at 2 epochs
    with pytest.raises(ValueError, match="the validation seeds differ between cells"):
        budget.select_budget(runs_from(table), {"b": {"grid": [1, 2], "level": 0.9}}, {"b": 1}, ["sgd"])
    with pytest.raises(ValueError, match="exactly one of level or plateau_tolerance"):
        budget.meets(0.9, 0.9, {"level": 0.9, "plateau_tolerance": 0.01})


def test_summarize_budget_groups_by_budget_with_per_seed_values():
    def run(o, e, s, old):  # two tasks: task 0 learned to 1.0, kept at `old`; task 1 learned to 0.8
        R = [[1.0, 0.0], [old, 0.8]]
        return {"benchmark": "b", "optimizer": o, "seed": s, "status": "ok", "R": R, "tasks": ["t0", "t1"],
                "spec": {"benchmark_cfg": {"epochs_per_task": e}}}
    runs = [run(o, e, s, old) for o, old in (("sgd", 0.2), ("shampoo", 0.6)) for e in (2, 10) for s in (0, 1)]
    out = budget.summarize_budget(runs, ["sgd", "shampoo"], {"b": {"selected_epochs": 10}})["b"]
    assert out["grid"] == [2, 10] and out["selected_epochs"] == 10 and set(out["epochs"]) == {"2", "10"}
    sgd = out["epochs"]["10"]["optimizers"]["sgd"]
    assert sgd["seeds"] == [0, 1] and sgd["average_forgetting"]["per_seed"] == pytest.approx([0.8, 0.8])
    assert sgd["learning_accuracy"]["mean"] == pytest.approx(0.9) and "R_per_seed" not in sgd
    # The claims audit pairs them by seed, per budget (keys_of enumerates the budgets, in numeric order).
    claim = {"id": "D", "metric": {"select": "b.epochs.{epochs}.optimizers.{optimizer}.mean_accuracy_old_tasks.per_seed"},
             "over": {"epochs": {"keys_of": "b.epochs"}}, "statement": "s", "source": "ours", "rule": "r",
             "output": "o", "figure": "f", "test": {"type": "compare", "a": "shampoo", "b": ["sgd"], "op": ">",
                                                    "threshold": 0.05}}
    row = C.evaluate(claim, json.loads(json.dumps({"b": out}, sort_keys=True)))  # as on disk: "10" before "2"
    assert [c["case"] for c in row["cases"]] == ["2: shampoo - sgd", "10: shampoo - sgd"]
    assert row["cases"][0]["value"] == pytest.approx(0.4) and row["verdict"] == C.SUPPORTED
    with pytest.raises(C.ClaimError, match="keys_of 'b.nothing'"):
        C.evaluate({**claim, "over": {"epochs": {"keys_of": "b.nothing"}}}, {"b": out})


def sweep_run(optimizer: str, lr: float, seed: int, score: float | None, benchmark: str = "b") -> dict:
    return {"optimizer": optimizer, "benchmark": benchmark, "seed": seed, "spec": {"optimizer_cfg": {"lr": lr}},
            "status": "ok" if score is not None else "diverged", "validation_score": score}


def test_sweep_scores_over_seeds_and_never_chooses_a_candidate_with_a_diverged_seed():
    # lr 1.0 has the best mean (0.495) but diverged on seed 1001: the knife edge. It is not eligible,
    # so lr 0.3 (0.425) wins over lr 0.1 (0.41).
    runs = [sweep_run("sgd", 0.1, 1000, 0.40), sweep_run("sgd", 0.1, 1001, 0.42),
            sweep_run("sgd", 0.3, 1000, 0.45), sweep_run("sgd", 0.3, 1001, 0.40),
            sweep_run("sgd", 1.0, 1000, 0.99), sweep_run("sgd", 1.0, 1001, None)]
    out = sweep.select(runs, {"sgd": 0.3})["sgd"]
    scores = {c["lr"]: c["score"] for c in out["candidates"]}
    assert scores == pytest.approx({0.1: 0.41, 0.3: 0.425, 1.0: 0.495})
    assert out["selected_lr"] == 0.3 and out["selected_has_diverged_seed"] is False and out["config_matches"] is True
    # The mean over seeds decides, not one seed: seed 1000 alone would have picked 0.3, seed 1001 alone 0.1.
    runs[3] = sweep_run("sgd", 0.3, 1001, 0.30)
    assert sweep.select(runs, {})["sgd"]["selected_lr"] == 0.1
    one = next(c for c in out["candidates"] if c["lr"] == 1.0)
    assert one["eligible"] is False and one["diverged_seeds"] == ["b/seed1001"]
    assert one["per_seed"] == {"b": {"1000": 0.99, "1001": 0.0}}


def test_sweep_with_every_candidate_diverged_somewhere_flags_the_choice():
    runs = [sweep_run("x", 0.1, 1000, 0.5), sweep_run("x", 0.1, 1001, None),
            sweep_run("x", 0.3, 1000, None), sweep_run("x", 0.3, 1001, 0.9)]
    out = sweep.select(runs, {})["x"]
    assert out["selected_lr"] == 0.3 and out["selected_has_diverged_seed"] is True and out["config_matches"] is False


def test_the_tiny_config_passes_the_budget_checks():
    cfg.check(copy.deepcopy(TINY_CONFIG))


def _drop_permuted_budget(c):
    del c["budget"]["benchmarks"]["permuted"]


@pytest.mark.parametrize("spoil, message", [
    (_drop_permuted_budget, r"budget.benchmarks: give exactly the config's benchmarks .* \(missing: \['permuted'\]"),
    (lambda c: c["budget"].update(seeds=[0, 7]), r"budget.seeds: \[7\] not in seeds"),
    (lambda c: c["benchmarks"]["permuted"].update(epochs_per_task=3),
     r"benchmarks.permuted.epochs_per_task is 3, not a budget of .*grid \[1, 2\]"),
    (lambda c: c["sweep"].update(seeds=[1000, 0]), r"sweep.seeds: \[0\] are reported seeds"),
])
def test_budget_block_checks_name_the_key_to_fix(spoil, message):
    bad = copy.deepcopy(TINY_CONFIG)
    spoil(bad)
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.check(bad)


def test_sweep_flags_candidates_that_did_not_learn():
    def run(lr, seed, score, benchmark="class_incremental"):
        r = sweep_run("x", lr, seed, score, benchmark)
        r["spec"]["benchmark_cfg"] = {"epochs_per_task": 1, "batch_size": 8, "n_tasks": 2}
        return r
    # Every candidate at chance (0.5 on pairs): the least bad is still chosen, and flagged.
    at_chance = [run(lr, s, 0.5 + 0.01 * k) for k, lr in enumerate((0.01, 0.1, 1.0)) for s in (1000, 1001)]
    out = sweep.select(at_chance, {})["x"]
    assert out["selected_lr"] == 1.0 and out["selected_learned"] is False
    assert out["chance_accuracy"] == {"class_incremental": 0.5}
    assert all(c["learned"] is False for c in out["candidates"])
    # On the boundary: a mean of exactly 0.75 on pairs learned, a diverged seed counts 0 in the mean.
    runs = [run(0.1, 1000, 0.7), run(0.1, 1001, 0.8), run(0.3, 1000, 1.0), run(0.3, 1001, None)]
    out = sweep.select(runs, {})["x"]
    by_lr = {c["lr"]: c for c in out["candidates"]}
    assert by_lr[0.1]["learned_per_benchmark"] == {"class_incremental": True} and by_lr[0.1]["learned"] is True
    assert by_lr[0.3]["learned"] is False  # mean 0.5 with the diverged seed at 0
    assert out["selected_lr"] == 0.1 and out["selected_learned"] is True
    # Per benchmark, each at its own chance: learned on permuted (0.6 >= 0.55) but not on pairs (0.6 < 0.75).
    both = [run(0.1, 1000, 0.6), run(0.1, 1000, 0.6, "permuted")]
    cand = sweep.select(both, {})["x"]["candidates"][0]
    assert cand["learned_per_benchmark"] == {"class_incremental": False, "permuted": True} and cand["learned"] is False


def test_sweep_without_a_chance_level_does_not_judge_unless_told():
    runs = [sweep_run("x", 0.1, 1000, 0.9), sweep_run("x", 0.1, 1001, 0.9)]  # benchmark "b", no benchmark_cfg
    assert sweep.select(runs, {})["x"]["selected_learned"] is None
    told = sweep.select(runs, {}, chance={"b": 0.1})["x"]
    assert told["selected_learned"] is True and told["chance_accuracy"] == {"b": 0.1}


def test_summarize_budget_says_at_which_budgets_each_optimizer_learned():
    def run(e, s, diag):
        R = [[diag, 0.0], [diag, diag]]  # task 0 kept: no forgetting
        return {"benchmark": "class_incremental", "optimizer": "sgd", "seed": s, "status": "ok", "R": R,
                "tasks": ["0/1", "2/3"], "spec": {"benchmark_cfg": {"epochs_per_task": e, "pairs": [[0, 1], [2, 3]]}}}
    out = budget.summarize_budget([run(1, 0, 0.5), run(1, 1, 0.52), run(5, 0, 0.9), run(5, 1, 0.95)], ["sgd"])
    at = out["class_incremental"]["epochs"]
    assert at["1"]["optimizers"]["sgd"]["learned"] is False and at["1"]["optimizers"]["sgd"]["chance_accuracy"] == 0.5
    assert at["5"]["optimizers"]["sgd"]["learned"] is True
