"""The claims audit: selectors, verdicts on fabricated outputs, provenance checks, the claims files."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import REPO
from optbias.paper import claims as C
from optbias.continual.metrics import summarize
from optbias.stats import bonferroni_level, t_interval, welch_interval
from optbias.continual.summary import summarize_runs

PAPER = REPO / "paper"


def real_claim(claim_id: str) -> dict:
    return next(c for c in C.load_claims(PAPER / "claims.yaml") if c["id"] == claim_id)


def fake_run(benchmark: str, optimizer: str, seed: int, R: list[list[float]]) -> dict:
    """A metrics.json as train.py writes it, for a hand-made accuracy matrix."""
    return {"benchmark": benchmark, "optimizer": optimizer, "seed": seed, "status": "ok", "R": R,
            "tasks": [f"t{j}" for j in range(len(R))], **summarize(R)}


def permuted_summary(first_task_final: dict[str, list[float]]) -> dict:
    """A 2-task summary where optimizer o, seed s learns both tasks and ends at first_task_final[o][s] on task 1.

    Forgetting of task 1 is then 1 - first_task_final[o][s].
    """
    runs = [fake_run("permuted", o, s, [[1.0, 0.1], [acc, 1.0]])
            for o, accs in first_task_final.items() for s, acc in enumerate(accs)]
    return summarize_runs(runs, list(first_task_final))


# --- selector and verdict, by hand ------------------------------------------------------------------

def test_select_steps_in_and_maps():
    doc = {"optimizers": {"sgd": {"R_per_seed": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]], "x": {"per_seed": [0.5]}}}}
    assert C.select(doc, "optimizers.sgd.x.per_seed") == [0.5]
    assert C.select(doc, "optimizers.sgd.R_per_seed[*][-1][0]") == [3, 7]
    assert C.select(doc, "optimizers.sgd.R_per_seed[*][-1][:-1]") == [[3], [7]]
    assert C.select(doc, "optimizers.sgd.R_per_seed[1][0]") == [5, 6]
    assert C.select(doc, "optimizers[*].x.per_seed") == [[0.5]]
    with pytest.raises(KeyError, match="optimizers.adam.*available at optimizers: sgd"):
        C.select(doc, "optimizers.adam.x")
    with pytest.raises(KeyError, match="index out of range"):
        C.select(doc, "optimizers.sgd.x.per_seed[3]")


def test_per_seed_reduces_all_but_the_seed_axis():
    assert C.per_seed([[0.1, 0.3], [0.0, 0.2]], "max") == [0.3, 0.2]
    assert C.per_seed([[0.1, 0.3], [0.0, 0.2]], "mean") == pytest.approx([0.2, 0.1])
    assert C.per_seed(0.7) == [0.7]
    with pytest.raises(ValueError, match="empty"):
        C.per_seed([])


@pytest.mark.parametrize("low, high, op, thr, expected", [
    (0.1, 0.2, ">", 0.05, C.SUPPORTED), (0.0, 0.04, ">", 0.05, C.NOT_SUPPORTED),
    (0.0, 0.1, ">", 0.05, C.INCONCLUSIVE), (0.0, 0.0, ">", 0.0, C.NOT_SUPPORTED),
    (-0.2, -0.1, "<", 0.0, C.SUPPORTED), (0.0, 0.3, "<", 0.0, C.NOT_SUPPORTED),
    (-0.1, 0.1, "<", 0.0, C.INCONCLUSIVE),
])
def test_verdict_follows_the_ci(low, high, op, thr, expected):
    assert C.verdict(low, high, op, thr) == expected


def test_combine_needs_every_case():
    assert C.combine([C.SUPPORTED, C.SUPPORTED]) == C.SUPPORTED
    assert C.combine([C.SUPPORTED, C.INCONCLUSIVE]) == C.INCONCLUSIVE
    assert C.combine([C.INCONCLUSIVE, C.NOT_SUPPORTED]) == C.NOT_SUPPORTED


def test_case_verdict_decides_against_at_the_adjusted_level():
    # 95% interval below a "> 0" threshold, adjusted interval straddling it: not decided.
    assert C.case_verdict((-0.5, -0.1), (-0.9, 0.3), ">", 0.0) == C.INCONCLUSIVE
    assert C.case_verdict((-0.5, -0.1), (-0.9, -0.01), ">", 0.0) == C.NOT_SUPPORTED
    assert C.case_verdict((0.1, 0.5), (-0.1, 0.7), ">", 0.0) == C.SUPPORTED  # for: the 95% interval
    assert C.case_verdict((0.0, 0.2), (-0.1, 0.3), "<", 0.0) == C.INCONCLUSIVE


def test_unpaired_cases_use_welch_and_one_seed_has_no_interval():
    claim = {**real_claim("C3a"), "metric": {"select": "{optimizer}"}}
    # shampoo [0.1, 0.1] vs adamw [0.5, 0.4, 0.6]: Welch, df = 2 (shampoo is constant),
    # -0.4 +- t_{0.975, 2} x 0.1 / sqrt(3); the k = 2 adjusted interval at 97.5%.
    row = C.evaluate(claim, {"shampoo": [0.1, 0.1], "sgd": [1.0, 1.0, 1.0], "adamw": [0.5, 0.4, 0.6]})
    adamw = next(c for c in row["cases"] if c["case"] == "shampoo - adamw")
    assert adamw["method"] == "welch" and adamw["n"] == [2, 3] and adamw["k"] == 2
    assert (adamw["value"], *adamw["ci95"]) == pytest.approx(welch_interval([0.1, 0.1], [0.5, 0.4, 0.6]))
    assert adamw["ci_adjusted"] == pytest.approx(list(welch_interval([0.1, 0.1], [0.5, 0.4, 0.6], 0.975)[1:]))
    assert adamw["ci95"][1] == pytest.approx(-0.4 + 4.302652729749464 * 0.1 / 3 ** 0.5)
    # One seed on a side: no interval, whatever the difference looks like.
    row = C.evaluate(claim, {"shampoo": [0.1], "sgd": [1.0, 1.0, 1.0], "adamw": [0.5, 0.4, 0.6]})
    assert all(c["verdict"] == C.INCONCLUSIVE and c["ci95"] is None and c["note"].startswith("one seed: no interval")
               for c in row["cases"]) and row["verdict"] == C.INCONCLUSIVE


# --- verdicts on fabricated outputs: the audit follows the data -------------------------------------

def test_shampoo_forgetting_more_than_sgd_and_adamw_is_not_supported():
    claim = real_claim("C3a")  # Shampoo's average forgetting < SGD's and AdamW's
    doc = permuted_summary({"sgd": [0.9, 0.8, 0.85], "adamw": [0.95, 0.9, 0.9], "shampoo": [0.3, 0.2, 0.25]})
    row = C.evaluate(claim, doc)
    assert row["verdict"] == C.NOT_SUPPORTED
    sgd = next(c for c in row["cases"] if c["case"] == "shampoo - sgd")
    assert sgd["value"] == pytest.approx(0.6) and sgd["note"] == "paired over 3 seeds"  # 0.75 - 0.15


def test_shampoo_forgetting_less_is_supported_and_a_straddling_ci_is_inconclusive():
    claim = real_claim("C3a")
    clear = permuted_summary({"sgd": [0.3, 0.2, 0.25], "adamw": [0.3, 0.3, 0.3], "shampoo": [0.9, 0.8, 0.85]})
    assert C.evaluate(claim, clear)["verdict"] == C.SUPPORTED
    # Shampoo forgets less than SGD on two seeds and more on one: the paired CI straddles 0.
    mixed = permuted_summary({"sgd": [0.5, 0.5, 0.5], "adamw": [0.3, 0.3, 0.3], "shampoo": [0.7, 0.6, 0.2]})
    row = C.evaluate(claim, mixed)
    sgd = next(c for c in row["cases"] if c["case"] == "shampoo - sgd")
    assert sgd["ci95"][0] < 0.0 < sgd["ci95"][1] and sgd["verdict"] == C.INCONCLUSIVE
    # Against AdamW (forgetting 0.7): differences -0.4, -0.3, +0.1, mean -0.2 with s / sqrt(3) =
    # 0.153, so the t interval [-0.857, 0.457] is not decided at three seeds either.
    adamw = next(c for c in row["cases"] if c["case"] == "shampoo - adamw")
    assert adamw["ci95"] == pytest.approx(list(t_interval([-0.4, -0.3, 0.1])[1:])) and adamw["verdict"] == C.INCONCLUSIVE
    assert row["verdict"] == C.INCONCLUSIVE


def test_threshold_claim_with_over_and_reduce():
    claim = real_claim("C1")  # best earlier pair < 0.05 for Adam x2, SGD, AdamW
    runs = []
    for o in ("adam-1e-3", "adam-1e-4", "sgd", "adamw"):
        for s in range(3):
            R = [[0.99, 0, 0], [0.0, 0.98, 0], [0.01 * s, 0.02, 0.97]]
            runs.append(fake_run("class_incremental", o, s, R))
    row = C.evaluate(claim, summarize_runs(runs, ["adam-1e-3", "adam-1e-4", "sgd", "adamw"]))
    assert [c["case"] for c in row["cases"]] == ["adam-1e-3", "adam-1e-4", "sgd", "adamw"]
    # best earlier pair per seed: max(0, 0.02), max(0.01, 0.02), max(0.02, 0.02) -> all 0.02
    assert all(c["value"] == pytest.approx(0.02) for c in row["cases"]) and row["verdict"] == C.SUPPORTED


def test_distance_claim_is_per_seed_mean_absolute_difference():
    claim = {**real_claim("C9b"), "test": {"type": "distance", "pairs": [["sgd", "shampoo"]], "op": ">",
                                             "threshold": 0.02}}
    doc = permuted_summary({"sgd": [0.5, 0.5], "shampoo": [0.7, 0.5]})
    row = C.evaluate(claim, doc)
    # seed 0: R differs in one of 4 entries by 0.2 -> 0.05; seed 1: identical -> 0
    assert row["cases"][0]["value"] == pytest.approx(0.025)
    # t interval of [0.05, 0]: 0.025 +- t_{0.975, 1} x 0.025 (s / sqrt(2) = 0.025)
    assert row["cases"][0]["ci95"] == pytest.approx([0.025 - 12.706204736174705 * 0.025, 0.025 + 12.706204736174705 * 0.025])
    assert row["cases"][0]["n"] == 2 and row["cases"][0]["method"] == "t" and row["verdict"] == C.INCONCLUSIVE


def test_a_diverged_seed_pairs_on_the_common_seeds():
    claim = real_claim("C3a")
    doc = permuted_summary({"sgd": [0.5, 0.5, 0.5], "adamw": [0.5, 0.5, 0.5], "shampoo": [0.9, 0.9, 0.9]})
    shampoo = doc["optimizers"]["shampoo"]
    shampoo["average_forgetting"]["per_seed"], shampoo["seeds"] = [0.1, 0.12], [0, 2]  # seed 1 diverged
    row = C.evaluate(claim, doc)
    # seeds 0 and 2: 0.1 - 0.5 and 0.12 - 0.5: mean -0.39, s / sqrt(2) = 0.01, t interval -0.39 +- 0.127
    assert row["cases"][0]["value"] == pytest.approx(-0.39) and row["cases"][0]["n"] == 2
    assert row["cases"][0]["ci95"] == pytest.approx([-0.39 - 12.706204736174705 * 0.01, -0.39 + 12.706204736174705 * 0.01])
    assert row["cases"][0]["note"] == "paired over 2 seeds (seeds [1] missing on one side)"
    assert row["verdict"] == C.SUPPORTED


def test_unpaired_values_without_seed_lists_fall_back_to_welch():
    claim = {**real_claim("C3a"), "metric": {"select": "{optimizer}"}}
    row = C.evaluate(claim, {"shampoo": [0.1, 0.1], "sgd": [0.5, 0.5, 0.5], "adamw": [0.5, 0.4, 0.6]})
    assert row["cases"][0]["note"].startswith("unpaired") and row["cases"][0]["value"] == pytest.approx(-0.4)
    assert row["cases"][0]["method"] == "welch" and row["cases"][0]["ci95"] == pytest.approx([-0.4, -0.4])  # both constant
    assert row["verdict"] == C.SUPPORTED


# --- false alarms across a claim's cases: intersection-union for, Bonferroni against -----------------

T975_DF2 = 4.302652729749464  # t_{0.975, 2} = 0.95 sqrt(2 / (1 - 0.95^2))


def three_case_claim(**test) -> dict:
    return {"id": "K3", "statement": "s", "source": "ours", "rule": "r", "output": "o", "figure": "f",
            "metric": {"select": "{case}"}, "over": {"case": ["x", "y", "z"]},
            "test": {"type": "threshold", "op": ">", "threshold": 0.0, **test}}


def test_a_case_on_the_wrong_side_at_95_but_not_at_the_bonferroni_level_is_inconclusive():
    # z: mean -1, s / sqrt(3) = 0.1732. Its 95% interval -1 +- 4.303 x 0.1732 = [-1.745, -0.255] is
    # below 0; with k = 3 cases the level against is 1 - 0.05/3, t_{1 - 0.05/6, 2} = 7.649, and
    # -1 +- 7.649 x 0.1732 = [-2.325, 0.325] straddles 0.
    doc = {"x": [1.0, 1.1, 1.2], "y": [0.9, 1.0, 1.1], "z": [-1.3, -1.0, -0.7]}
    row = C.evaluate(three_case_claim(), doc)
    z = row["cases"][2]
    assert row["k"] == 3 and z["k"] == 3 and z["level_adjusted"] == pytest.approx(1 - 0.05 / 3)
    assert z["ci95"] == pytest.approx([-1 - T975_DF2 * 0.3 / 3 ** 0.5, -1 + T975_DF2 * 0.3 / 3 ** 0.5])
    assert z["ci95"][1] < 0.0 < z["ci_adjusted"][1]
    assert z["ci_adjusted"] == pytest.approx(list(t_interval(doc["z"], bonferroni_level(0.95, 3))[1:]))
    assert z["ci_adjusted"][1] == pytest.approx(-1 + 7.648803937915553 * 0.3 / 3 ** 0.5, abs=1e-9)
    assert z["verdict"] == C.INCONCLUSIVE and row["verdict"] == C.INCONCLUSIVE
    assert "k = 3" in row["test"] and "98.33% CI" in row["test"]
    # The page shows the interval that decides against the claim where the claim is not supported.
    lo, hi = z["ci_adjusted"]
    assert C.measured(row).endswith(f"z: -1.000 [-1.745, -0.255] (n = 3; 98.33% CI [{lo:.3f}, {hi:.3f}])")
    assert "x: 1.100 [0.852, 1.348] (n = 3);" in C.measured(row)  # supported: the 95% interval only
    # The same case alone (k = 1) is the plain rule: its 95% interval is below 0.
    alone = C.evaluate({**three_case_claim(), "over": {"case": ["z"]}}, doc)
    assert alone["k"] == 1 and alone["cases"][0]["ci_adjusted"] == alone["cases"][0]["ci95"]
    assert alone["verdict"] == C.NOT_SUPPORTED and alone["test"] == "mean > 0 (t 95% CI)"


def test_a_case_far_on_the_wrong_side_is_not_supported_and_every_case_must_hold_for_supported():
    far = {"x": [1.0, 1.1, 1.2], "y": [0.9, 1.0, 1.1], "z": [-10.3, -10.0, -9.7]}
    row = C.evaluate(three_case_claim(), far)
    assert [c["verdict"] for c in row["cases"]] == [C.SUPPORTED, C.SUPPORTED, C.NOT_SUPPORTED]
    assert row["verdict"] == C.NOT_SUPPORTED
    # Every case's 95% interval above 0 (no correction: an intersection-union test).
    row = C.evaluate(three_case_claim(), {**far, "z": [0.5, 0.6, 0.7]})
    assert row["verdict"] == C.SUPPORTED
    assert row["cases"][2]["ci95"][0] == pytest.approx(0.6 - T975_DF2 * 0.1 / 3 ** 0.5)


# --- deterministic values, one seed, optimizers that did not learn ---------------------------------

def test_a_plain_number_is_deterministic_and_tested_exactly():
    claim = real_claim("C7")  # fitted log-log slope > 1.5 for each form and alpha
    forms = {"sgd": {"alphas": {"2": {"abs_slope": 2.0}, "3": {"abs_slope": 1.9}}},
             "adam": {"alphas": {"2": {"abs_slope": 1.6}, "3": {"abs_slope": 1.5001}}}}
    row = C.evaluate(claim, {"forms": forms})
    assert [c["case"] for c in row["cases"]] == ["sgd, 2", "sgd, 3", "adam, 2", "adam, 3"]
    assert all(c["ci95"] is None and c["method"] == "exact" and c["note"] == "deterministic: tested exactly"
               for c in row["cases"])
    assert row["verdict"] == C.SUPPORTED and row["cases"][3]["value"] == 1.5001
    forms["adam"]["alphas"]["3"]["abs_slope"] = 1.5  # exactly the threshold: not above it
    row = C.evaluate(claim, {"forms": forms})
    assert row["cases"][3]["verdict"] == C.NOT_SUPPORTED and row["verdict"] == C.NOT_SUPPORTED
    assert "adam, 3: 1.5 (exact)" in C.measured(row)


def test_one_seed_is_not_deterministic_it_is_inconclusive():
    claim = {**three_case_claim(), "over": {"case": ["x"]}}
    row = C.evaluate(claim, {"x": [5.0]})  # far above the threshold, but one seed has no interval
    [case] = row["cases"]
    assert case["verdict"] == C.INCONCLUSIVE and case["ci95"] is None and case["n"] == 1
    assert case["note"] == "one seed: no interval" and row["verdict"] == C.INCONCLUSIVE
    assert C.measured(row) == "x: 5.000 (n = 1) (one seed: no interval)"


def test_an_optimizer_that_did_not_learn_makes_its_cases_inconclusive():
    claim = real_claim("C3a")  # shampoo forgets less than sgd and adamw
    doc = permuted_summary({"sgd": [0.3, 0.2, 0.25], "adamw": [0.3, 0.3, 0.3], "shampoo": [0.9, 0.8, 0.85]})
    assert C.evaluate(claim, doc)["verdict"] == C.SUPPORTED
    doc["optimizers"]["sgd"]["learned"] = False
    doc["optimizers"]["adamw"]["learned"] = True
    row = C.evaluate(claim, doc)
    sgd, adamw = row["cases"]
    assert sgd["verdict"] == C.INCONCLUSIVE and sgd["ci95"][1] < 0.0  # whatever its interval
    assert sgd["note"].startswith("sgd did not learn: its forgetting is not read as retention")
    assert sgd["did_not_learn"] == ["sgd"] and adamw["verdict"] == C.SUPPORTED and row["verdict"] == C.INCONCLUSIVE
    assert "(sgd did not learn: its forgetting is not read as retention)" in C.measured(row)
    # Deeper in a summary: <benchmark>.epochs.<e>.optimizers.<name>.learned, for a threshold claim too.
    nested = {"class_incremental": {"epochs": {"5": {"optimizers": {
        "sgd": {"learned": False, "seeds": [0, 1], "x": {"per_seed": [0.01, 0.01]}}}}}}}
    claim = {**three_case_claim(), "metric": {"select": "class_incremental.epochs.5.optimizers.sgd.x.per_seed"},
             "over": {}, "test": {"type": "threshold", "op": "<", "threshold": 0.05}}
    [case] = C.evaluate(claim, nested)["cases"]
    assert case["verdict"] == C.INCONCLUSIVE and case["note"].startswith("sgd did not learn")
    nested["class_incremental"]["epochs"]["5"]["optimizers"]["sgd"]["learned"] = None  # not judged: no effect
    assert C.evaluate(claim, nested)["verdict"] == C.SUPPORTED


def test_a_plasticity_claim_reads_the_learning_accuracy_of_a_run_that_did_not_learn():
    """The flag guards retention. D3a compares learning accuracies, the quantity the flag is judged
    on: that AdamW did not learn at one epoch is what such a claim is about, so its case keeps its
    verdict, while a retention claim on the same entry (D1) is INCONCLUSIVE."""
    entry = lambda learning, kept, learned: {"seeds": [0, 1, 2], "learned": learned,  # noqa: E731
                                             "learning_accuracy": {"per_seed": learning},
                                             "mean_accuracy_old_tasks": {"per_seed": kept}}
    doc = {"class_incremental": {"epochs": {"1": {"optimizers": {
        "shampoo": entry([0.99, 0.98, 0.99], [0.3, 0.32, 0.31], True),
        "sgd": entry([0.99, 0.98, 0.99], [0.0, 0.01, 0.0], True),
        "adamw": entry([0.40, 0.42, 0.41], [0.0, 0.0, 0.01], False),
        "adam-1e-3": entry([0.99, 0.98, 0.99], [0.0, 0.0, 0.0], True),
        "adam-1e-4": entry([0.99, 0.98, 0.99], [0.0, 0.0, 0.0], True)}}}}}
    d3a = C.evaluate(real_claim("D3a"), doc)
    assert {c["case"]: c["verdict"] for c in d3a["cases"]}["1: shampoo - adamw"] == C.SUPPORTED
    assert d3a["verdict"] == C.SUPPORTED and not any("did not learn" in c["note"] for c in d3a["cases"])
    d1 = C.evaluate(real_claim("D1"), doc)
    adamw = {c["case"]: c for c in d1["cases"]}["1: shampoo - adamw"]
    assert adamw["verdict"] == C.INCONCLUSIVE and adamw["note"].startswith("adamw did not learn")


# --- seeds: the nearest list along the selector ----------------------------------------------------

def test_powerprop_methods_pair_by_the_seeds_one_level_up():
    """powerprop.json keeps `seeds` in each method's entry (methods.<name>.seeds), not in the
    seed_stat: the audit finds them there and pairs by seed, not by position."""
    from optbias.stats import seed_stat

    methods = {"sgd": {"seeds": [0, 1, 2], "sparsity_fraction": seed_stat([0.01, 0.02, 0.03])},
               "ppsgd-a2": {"seeds": [1, 2, 3], "sparsity_fraction": seed_stat([0.22, 0.23, 0.50])}}
    claim = {**real_claim("C8a"), "test": {"type": "compare", "a": "ppsgd-a2", "b": ["sgd"], "op": ">",
                                           "threshold": 0.1}}
    [case] = C.evaluate(claim, {"methods": methods})["cases"]
    # seeds 1 and 2: 0.22 - 0.02 and 0.23 - 0.03 (by position it would be 0.21, 0.21, 0.47)
    assert case["value"] == pytest.approx(0.2) and case["n"] == 2 and case["method"] == "paired t"
    assert case["note"] == "paired over 2 seeds (seeds [0, 3] missing on one side)"
    # A seed_stat that holds its own seeds is nearer, and wins over the entry's.
    methods["sgd"]["sparsity_fraction"] = seed_stat([0.03, 0.01, 0.02], seeds=[2, 0, 1])
    [case] = C.evaluate(claim, {"methods": methods})["cases"]
    assert case["value"] == pytest.approx(0.2) and case["ci95"] == pytest.approx([0.2, 0.2])
    # A seeds list of another length is not this list's: the next one up is taken, else by position.
    methods["sgd"]["sparsity_fraction"]["seeds"] = [2, 0]
    methods["sgd"]["sparsity_fraction"]["per_seed"] = [0.01, 0.02, 0.03]
    assert C._seeds({"methods": methods}, "methods.sgd.sparsity_fraction.per_seed", 3) == [0, 1, 2]
    assert C._seeds({"methods": methods}, "methods.sgd.sparsity_fraction.per_seed", 4) is None


# --- floor: the distance between optimizers against two batch orders of one ------------------------

def floor_doc() -> dict:
    from optbias.stats import seed_stat

    def three(values, seeds=(0, 1, 2)):
        return {"function": seed_stat(values, list(seeds))}
    return {"class_incremental": {
        "pairs": {"sgd~adamw": three([0.30, 0.28, 0.29]),
                  "shampoo~sgd": three([0.16, 0.15, 0.20])},  # stored in the other order: a distance is symmetric
        "floors": {"sgd": three([0.15, 0.16, 0.14]),
                   "adamw": three([0.13, 0.14, 0.17], seeds=(2, 0, 1)),  # seeds 0, 1, 2: 0.14, 0.17, 0.13
                   "shampoo": three([0.10, 0.10, 0.10])}}}


FLOOR_CLAIM = {"id": "F1", "statement": "s", "source": "ours", "rule": "solution_distance",
               "output": "data/summary/solution_distance.json", "figure": "f",
               "metric": {"select": "{benchmark}.pairs.{a}~{b}.function.per_seed",
                          "floor": "{benchmark}.floors.{optimizer}.function.per_seed"},
               "over": {"benchmark": ["class_incremental"]},
               "test": {"type": "floor", "pairs": [["sgd", "adamw"], ["sgd", "shampoo"]], "op": ">", "threshold": 0.0}}


def test_floor_margin_is_the_distance_minus_the_larger_floor_paired_by_seed():
    row = C.evaluate(FLOOR_CLAIM, floor_doc())
    adamw, shampoo = row["cases"]
    # sgd~adamw: per seed max(floor sgd, floor adamw) = max(0.15, 0.14), max(0.16, 0.17), max(0.14, 0.13)
    # = 0.15, 0.17, 0.14; margins 0.15, 0.11, 0.15: mean 0.41/3, s = 0.04/sqrt(3), s/sqrt(3) = 0.04/3.
    assert adamw["case"] == "class_incremental: sgd~adamw" and adamw["method"] == "paired t" and adamw["n"] == 3
    assert adamw["value"] == pytest.approx(0.41 / 3)
    assert adamw["ci95"] == pytest.approx([0.41 / 3 - T975_DF2 * 0.04 / 3, 0.41 / 3 + T975_DF2 * 0.04 / 3])
    assert adamw["verdict"] == C.SUPPORTED and adamw["seeds"] == [0, 1, 2]
    # The distance and both floors travel with the margin, each with its own interval.
    assert adamw["distance"]["mean"] == pytest.approx(0.29) and adamw["distance"]["n"] == 3
    assert adamw["floors"]["adamw"]["mean"] == pytest.approx(0.44 / 3)
    assert adamw["floors"]["sgd"]["ci95"] == pytest.approx(list(t_interval([0.15, 0.16, 0.14])[1:]))
    # sgd~shampoo (stored as shampoo~sgd): margins 0.01, -0.01, 0.06 straddle 0.
    assert shampoo["value"] == pytest.approx(0.02) and shampoo["verdict"] == C.INCONCLUSIVE
    assert row["verdict"] == C.INCONCLUSIVE and row["k"] == 2
    text = C.measured(row)
    lo, hi = adamw["ci95"]
    sgd_lo, sgd_hi = adamw["floors"]["sgd"]["ci95"]
    assert (f"class_incremental: sgd~adamw: 0.290 [{adamw['distance']['ci95'][0]:.3f}, "
            f"{adamw['distance']['ci95'][1]:.3f}] vs floor max(sgd 0.150 [{sgd_lo:.3f}, {sgd_hi:.3f}], adamw 0.147 ["
            in text)
    assert f"]): margin 0.137 [{lo:.3f}, {hi:.3f}] (n = 3)" in text
    assert "margin d(a, b) - max(floor a, floor b) per seed > 0" in row["test"]


def test_floor_pairs_on_the_common_seeds_and_fails_clearly_without_one():
    doc = floor_doc()
    floors = doc["class_incremental"]["floors"]
    floors["adamw"]["function"] = {"mean": 0.15, "ci95": None, "per_seed": [0.14, 0.17], "seeds": [0, 1]}
    adamw = C.evaluate(FLOOR_CLAIM, doc)["cases"][0]
    assert adamw["n"] == 2 and adamw["value"] == pytest.approx(0.13)  # margins 0.15, 0.11 on seeds 0 and 1
    assert adamw["note"] == "paired over 2 seeds (seeds [2] missing on one side)"
    floors["adamw"]["function"]["seeds"] = [7, 8]
    with pytest.raises(C.ClaimError, match="F1: the distance sgd~adamw and the floors of sgd and adamw share no seed"):
        C.evaluate(FLOOR_CLAIM, doc)
    del floors["shampoo"]
    with pytest.raises(C.ClaimError, match="floors.shampoo.*not found"):
        C.evaluate({**FLOOR_CLAIM, "test": {**FLOOR_CLAIM["test"], "pairs": [["sgd", "shampoo"]]}}, doc)


def test_load_claims_checks_a_floor_test(tmp_path):
    def load(claim):
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({"claims": [claim]}))
        return C.load_claims(tmp_path / "c.yaml")

    assert load(FLOOR_CLAIM)[0]["test"]["type"] == "floor"
    with pytest.raises(C.ClaimError, match="a floor test needs metric.floor"):
        load({**FLOOR_CLAIM, "metric": {"select": FLOOR_CLAIM["metric"]["select"]}})
    with pytest.raises(C.ClaimError, match="a floor test needs pairs"):
        load({**FLOOR_CLAIM, "test": {k: v for k, v in FLOOR_CLAIM["test"].items() if k != "pairs"}})
    with pytest.raises(C.ClaimError, match="a floor test needs pairs"):
        load({**FLOOR_CLAIM, "test": {**FLOOR_CLAIM["test"], "pairs": [["sgd"]]}})
    with pytest.raises(C.ClaimError, match="a floor test needs op"):
        load({**FLOOR_CLAIM, "test": {**FLOOR_CLAIM["test"], "op": ">="}})


# --- superseded claims: listed with their last verdict, not evaluated, not counted ------------------

def superseded(claim: dict, **fields) -> dict:
    return {**claim, "superseded_by": "C3b", "reason": "C3b compares against the batch-order floor",
            "last_verdict": "SUPPORTED", "last_verdict_commit": "e1e0fc0", **fields}


def test_load_claims_checks_the_superseded_fields(tmp_path):
    def load(*claims):
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({"claims": list(claims)}))
        return C.load_claims(tmp_path / "c.yaml")

    new = {**real_claim("C3a"), "id": "C3b"}
    assert C.is_superseded(load(superseded(real_claim("C3a")), new)[0])
    with pytest.raises(C.ClaimError, match="superseded_by 'C3b', which no loaded claims file defines"):
        load(superseded(real_claim("C3a")))
    with pytest.raises(C.ClaimError, match="missing reason"):
        load({k: v for k, v in superseded(real_claim("C3a")).items() if k != "reason"}, new)
    with pytest.raises(C.ClaimError, match="reason must say why"):
        load(superseded(real_claim("C3a"), reason="  "), new)
    with pytest.raises(C.ClaimError, match="last_verdict must be one of SUPPORTED, NOT SUPPORTED, INCONCLUSIVE"):
        load(superseded(real_claim("C3a"), last_verdict="supported"), new)
    with pytest.raises(C.ClaimError, match="last_verdict_commit must be a commit hash"):
        load(superseded(real_claim("C3a"), last_verdict_commit="HEAD"), new)
    with pytest.raises(C.ClaimError, match="which is itself superseded"):
        load(superseded(real_claim("C3a")), superseded(new, superseded_by="C3a"))
    # Across files: the new claim may be in another file of paper.claims.
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"claims": [superseded(real_claim("C3a"))]}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"claims": [new]}))
    assert [c["id"] for c in C.load_claims_files([tmp_path / "a.yaml", tmp_path / "b.yaml"])] == ["C3a", "C3b"]


def test_superseded_claims_are_listed_not_evaluated_nor_counted(tmp_path):
    (tmp_path / "data/summary").mkdir(parents=True)
    doc = permuted_summary({"sgd": [0.9, 0.8], "adamw": [0.9, 0.9], "shampoo": [0.2, 0.1]})
    (tmp_path / "data/summary/permuted.json").write_text(json.dumps(doc))
    # The old claim points at a rule that is gone: it is not checked nor read.
    old = superseded({**real_claim("C3a"), "rule": "gone", "output": "data/gone.json"},
                     superseded_by=["C3b", "C3c"], last_verdict_commit="0123456789abcdef0123456789abcdef01234567")
    new_b = {**real_claim("C3a"), "id": "C3b"}
    new_c = {**real_claim("C3a"), "id": "C3c", "test": {**real_claim("C3a")["test"], "op": ">"}}
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump({"claims": [old, new_b, new_c]}))
    result = C.run_audit(tmp_path / "claims.yaml", RULES, tmp_path / "audit.md", tmp_path / "audit.json", tmp_path,
                         output_verdicts=tmp_path / "verdicts.json")
    assert [r["id"] for r in result["claims"]] == ["C3b", "C3c"]
    assert result["counts"] == {"SUPPORTED": 1, "NOT SUPPORTED": 1, "INCONCLUSIVE": 0}
    assert result["superseded"] == [{
        "id": "C3a", "statement": " ".join(real_claim("C3a")["statement"].split()), "last_verdict": "SUPPORTED",
        "last_verdict_commit": "0123456789abcdef0123456789abcdef01234567", "superseded_by": ["C3b", "C3c"],
        "new_verdicts": {"C3b": "NOT SUPPORTED", "C3c": "SUPPORTED"},
        "reason": "C3b compares against the batch-order floor"}]
    assert json.loads((tmp_path / "verdicts.json").read_text()) == {"C3b": "NOT SUPPORTED", "C3c": "SUPPORTED"}
    assert json.loads((tmp_path / "audit.json").read_text())["superseded"] == result["superseded"]
    md = (tmp_path / "audit.md").read_text()
    assert "(of 2). 1 superseded claim(s) are listed at the end, not counted." in md
    section = md.split("## Superseded claims", 1)[1]
    assert "| old claim | statement | last verdict | replaced by (verdict now) | reason |" in section
    assert ('<a id="claim-C3a"></a>**C3a**' in section and
            "**SUPPORTED** (commit `0123456789abcdef0123456789abcdef01234567`)" in section)
    assert "[C3b](#claim-C3b): **NOT SUPPORTED**, [C3c](#claim-C3c): **SUPPORTED**" in section
    assert "C3b compares against the batch-order floor" in section
    assert '<a id="claim-C3a">' not in md.split("## Superseded claims", 1)[0]  # not a row of the table
    # Without superseded claims: no section.
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump({"claims": [new_b]}))
    C.run_audit(tmp_path / "claims.yaml", RULES, tmp_path / "audit.md", tmp_path / "audit.json", tmp_path)
    assert "Superseded" not in (tmp_path / "audit.md").read_text()


def test_a_value_the_output_does_not_hold_is_an_error():
    doc = permuted_summary({"sgd": [0.5], "shampoo": [0.5]})  # no adamw in this run
    with pytest.raises(C.ClaimError, match="C3a.*optimizers.adamw.*not found"):
        C.evaluate(real_claim("C3a"), doc)


# --- provenance: a claim must point at a real rule and one of its outputs ---------------------------

RULES = {"summarize": ["data/summary/{benchmark}.json"], "sweep_select": ["data/sweep/selected.json"]}


def test_provenance_accepts_an_output_of_the_rule():
    C.check_provenance([{"id": "X", "rule": "summarize", "output": "data/summary/permuted.json"}], RULES)


def test_provenance_honours_wildcard_constraints():
    rules = {"summarize": ["data/summary/{benchmark,class_incremental|permuted}.json"],
             "train": [r"data/runs/{b}/{o}/seed{seed,\d{1,3}}/metrics.json"]}
    C.check_provenance([{"id": "X", "rule": "summarize", "output": "data/summary/permuted.json"},
                        {"id": "Z", "rule": "train", "output": "data/runs/p/sgd/seed12/metrics.json"}], rules)
    with pytest.raises(C.ClaimError, match="not an output of rule 'summarize'"):
        C.check_provenance([{"id": "Y", "rule": "summarize", "output": "data/summary/shampoo_ablation.json"}], rules)
    with pytest.raises(C.ClaimError, match="not an output of rule 'train'"):
        C.check_provenance([{"id": "W", "rule": "train", "output": "data/runs/p/sgd/seedx/metrics.json"}], rules)


def test_provenance_rejects_a_missing_rule_and_a_foreign_output():
    with pytest.raises(C.ClaimError, match="claim X: rule 'probe' does not exist.*claims_pending"):
        C.check_provenance([{"id": "X", "rule": "probe", "output": "data/summary/probes_permuted.json"}], RULES)
    with pytest.raises(C.ClaimError, match="claim Y: 'data/sweep/selected.json' is not an output of rule 'summarize'"):
        C.check_provenance([{"id": "Y", "rule": "summarize", "output": "data/sweep/selected.json"}], RULES)


def test_run_audit_writes_the_table_and_fails_on_a_missing_output(tmp_path):
    (tmp_path / "data/summary").mkdir(parents=True)
    # Shampoo forgets 0.7 more than SGD and AdamW on both seeds: NOT SUPPORTED even at 97.5% (k = 2).
    doc = permuted_summary({"sgd": [0.9, 0.8], "adamw": [0.9, 0.9], "shampoo": [0.2, 0.1]})
    (tmp_path / "data/summary/permuted.json").write_text(json.dumps(doc))
    claims = {"claims": [real_claim("C3a")]}
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump(claims))
    def run():
        return C.run_audit(tmp_path / "claims.yaml", RULES, tmp_path / "audit.md", tmp_path / "audit.json", tmp_path)

    run()
    result = json.loads((tmp_path / "audit.json").read_text())
    assert result["counts"] == {"SUPPORTED": 0, "NOT SUPPORTED": 1, "INCONCLUSIVE": 0}
    md = (tmp_path / "audit.md").read_text()
    assert '<a id="claim-C3a"></a>**C3a**' in md and "**NOT SUPPORTED**" in md and "`summarize`" in md
    # The measured column gives each case's n; the header says how intervals and verdicts are decided.
    assert "shampoo - sgd: 0.700 [0.700, 0.700] (n = 2; 97.5% CI [0.700, 0.700])" in md
    assert ("Student-t 95% intervals of the mean over seeds, or of the per-seed paired differences "
            "(runs paired by seed); Welch for unpaired; deterministic values tested exactly") in md
    assert "intersection-union test" in md and "Bonferroni level 1 − 0.05/k" in md and "bootstrap" not in md
    # The header names the claims file and gives a rerun command whose target survives `--forcerun`
    # (which takes every word after it: `--forcerun <rule> paper/audit.md` would force a rule named
    # paper/audit.md and build the whole pipeline).
    assert "from `claims.yaml` and the pipeline's outputs" in md and str(tmp_path) not in md
    assert C._relative(REPO / "paper/claims.yaml", tmp_path) == "paper/claims.yaml"  # a run elsewhere
    assert "`snakemake --cores all paper/audit.md --forcerun <rule>`" in md
    (tmp_path / "more.yaml").write_text(yaml.safe_dump({"claims": []}))
    C.run_audit([tmp_path / "claims.yaml", tmp_path / "more.yaml"], RULES, tmp_path / "audit.md",
                tmp_path / "audit.json", tmp_path)
    assert "from `claims.yaml` and `more.yaml` and the pipeline's outputs" in (tmp_path / "audit.md").read_text()
    assert json.loads((tmp_path / "audit.json").read_text())["claims_files"] == ["claims.yaml", "more.yaml"]
    (tmp_path / "data/summary/permuted.json").unlink()
    with pytest.raises(C.ClaimError, match="output data/summary/permuted.json does not exist; build it first"):
        run()  # a clear error, not a verdict



def test_the_audit_names_the_lock_its_sha256_and_the_dataset(tmp_path):
    (tmp_path / "data/summary").mkdir(parents=True)
    doc = permuted_summary({"sgd": [0.9, 0.8], "adamw": [0.9, 0.9], "shampoo": [0.2, 0.3]})
    (tmp_path / "data/summary/permuted.json").write_text(json.dumps(doc))
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump({"claims": [real_claim("C3a")]}))
    lock = tmp_path / "elsewhere" / "requirements.lock"
    lock.parent.mkdir()
    lock.write_bytes(b"abc")  # SHA-256 of "abc", from FIPS 180-2's examples
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert C.lock_record(lock) == {"file": "requirements.lock", "sha256": digest}
    C.run_audit(tmp_path / "claims.yaml", RULES, tmp_path / "audit.md", tmp_path / "audit.json", tmp_path,
                lock=lock, dataset="Fashion-MNIST")
    assert json.loads((tmp_path / "audit.json").read_text())["dataset"] == "Fashion-MNIST"
    assert ("Measured on **Fashion-MNIST**. The statements are the claims as declared, in the paper's terms: "
            "where they say MNIST, the values are measured on Fashion-MNIST.") in (tmp_path / "audit.md").read_text()
    assert json.loads((tmp_path / "audit.json").read_text())["environment"] == C.lock_record(lock)
    md = (tmp_path / "audit.md").read_text()
    assert f"`requirements.lock` (SHA-256 `{digest}`)" in md and str(tmp_path) not in md
    # Without a lock or a dataset (as before), no such lines; on MNIST, no reading note.
    C.run_audit(tmp_path / "claims.yaml", RULES, tmp_path / "audit.md", tmp_path / "audit.json", tmp_path)
    assert "SHA-256" not in (tmp_path / "audit.md").read_text() and "Measured on" not in (tmp_path / "audit.md").read_text()
    C.run_audit(tmp_path / "claims.yaml", RULES, tmp_path / "audit.md", tmp_path / "audit.json", tmp_path, dataset="MNIST")
    assert "Measured on **MNIST**.\n" in (tmp_path / "audit.md").read_text()

# --- the claims files and the paper agree -----------------------------------------------------------

def test_every_claim_of_the_paper_is_defined_and_every_claim_is_cited():
    """Every active claim is cited; a superseded claim is not audited, so the paper cannot cite it."""
    claims = C.load_claims(PAPER / "claims.yaml")
    cited = set(re.findall(r"\[claim:([A-Za-z][A-Za-z0-9_-]*)\]", (PAPER / "paper.md").read_text()))
    assert cited == {c["id"] for c in claims if not C.is_superseded(c)}


def test_pending_claims_are_well_formed_and_not_audited():
    pending = C.load_claims(PAPER / "claims_pending.yaml")
    audited = {c["id"] for c in C.load_claims_files([PAPER / "claims.yaml", PAPER / "claims_extended.yaml"])}
    # C4, C5 (as C5a, C5b), C7, C8a, C8b, C9c, C9d, E1 and E2 moved to claims.yaml, and E3a, E3b, E4
    # to claims_extended.yaml. What waits (issue 31's floor and ablation claims, until their rules
    # land) loads, with every field a test needs, and is not audited under the same id.
    assert not audited & {c["id"] for c in pending}


def test_the_designed_optimizer_claims_are_the_declared_ones():
    """Issue 33's M1-M6, declared in claims_pending.yaml with paper/designing_an_optimizer.md before
    any continual-learning run of Memory Shampoo, OWM, EWC or SI: test, sides, direction and
    threshold, wherever the claims file they sit in."""
    claims = {c["id"]: c for c in C.load_claims_files(
        [PAPER / "claims.yaml", PAPER / "claims_pending.yaml"]) if c["id"].startswith("M")}
    declared = {
        "M1": ("compare", "memory-shampoo", ["shampoo"], "<", 0.0, "permuted"),
        "M2": ("compare", "memory-shampoo", ["shampoo"], ">", -0.01, "permuted"),
        "M3": ("threshold", None, None, ">", 0.5, "class_incremental"),
        "M4": ("compare", "owm", ["shampoo"], ">", 0.0, "class_incremental"),
        "M5": ("compare", "memory-shampoo", ["ewc", "si"], ">", 0.0, "class_incremental"),
        "M6": ("compare", "memory-shampoo", ["ewc", "si"], "<", 0.0, "permuted"),
    }
    assert {k: (c["test"]["type"], c["test"].get("a"), c["test"].get("b"), c["test"]["op"], c["test"]["threshold"],
                c["output"].split("/")[-1].removesuffix(".json")) for k, c in claims.items()} == declared
    assert "memory-shampoo" in claims["M3"]["metric"]["select"]
    # The protocol claims declared when M1-M4 moved to claims.yaml, before the default's first run of
    # either optimizer: each knob is the retention rule's choice, OWM's rate the sweep's, and the
    # chosen candidates learned.
    audited = {c["id"]: c for c in C.load_claims(PAPER / "claims.yaml")}
    assert {k: (audited[k]["metric"]["select"], audited[k]["test"]) for k in ("K1", "K2", "K3")} == {
        "K1": ("knobs.{optimizer}.config_matches", {"type": "equals", "value": True}),
        "K2": ("owm.config_matches", {"type": "equals", "value": True}),
        "K3": ("knobs.{optimizer}.selected_eligible", {"type": "equals", "value": True})}
    assert (audited["K4"]["metric"]["select"], audited["K4"]["test"]) == (
        "owm.edge_of_grid", {"type": "equals", "value": False})
    # K5 and K6, declared when EWC and SI joined the default, before any of their runs: K1 and K3 for them.
    for k, like in (("K5", "K1"), ("K6", "K3")):
        assert (audited[k]["metric"], audited[k]["test"], audited[k]["over"]) == (
            audited[like]["metric"], audited[like]["test"], {"optimizer": ["ewc", "si"]})


def test_the_extended_claims_are_the_declared_ones():
    """paper/claims_extended.yaml, audited by config/extended.yaml: E3a, E3b, E4 as declared in
    claims_pending.yaml (commit of 2026-11-30, before any forgetting run of these optimizers), and
    the protocol claims for them, declared before any run of the extended config."""
    claims = C.load_claims(PAPER / "claims_extended.yaml")
    assert {c["id"]: (c["test"].get("op"), c["test"].get("threshold", c["test"].get("value"))) for c in claims} == {
        "ES1": (None, True), "ES2": (None, False), "ES3": (None, False), "EB3": (">", 0.95),
        "E3a": ("<", 0.0), "E3b": ("<", 0.0), "E4": (">", 0.0)}
    assert [(c["test"]["a"], c["test"]["b"]) for c in claims if c["id"].startswith(("E3", "E4"))] == [
        ("soap", ["adamw"]), ("psgd-kron", ["adamw"]), ("muon", ["adamw"])]


def test_several_claims_files_load_in_order_and_an_id_may_be_defined_once(tmp_path):
    claim = (PAPER / "claims.yaml").read_text().split("claims:", 1)[1].split("\n  - id:")[1]
    (tmp_path / "a.yaml").write_text("claims:\n  - id:" + claim)
    (tmp_path / "b.yaml").write_text("claims:\n  - id:" + claim.replace(claim.split()[0], "Z1", 1))
    assert [c["id"] for c in C.load_claims_files([tmp_path / "a.yaml", tmp_path / "b.yaml"])] == ["C1", "Z1"]
    assert [c["id"] for c in C.load_claims_files(str(tmp_path / "a.yaml"))] == ["C1"]
    with pytest.raises(C.ClaimError, match="a.yaml: claim C1 is already defined in .*a.yaml"):
        C.load_claims_files([tmp_path / "a.yaml", tmp_path / "a.yaml"])
    with pytest.raises(C.ClaimError, match="set paper.claims"):
        C.load_claims_files([])


def test_thresholds_are_the_declared_ones():
    """The thresholds as first committed, before any result was seen: moving one fails this test."""
    declared = {"C1": 0.05, "C1b": 0.9, "C2": 0.05, "C2b": 0.1, "C3a": 0.0, "C3b": 0.0, "C6": 0.5,
                "C9a": 0.02, "C9b": 0.02, "A1": 0.0, "A2": 0.0, "A3": 0.0,
                # declared in claims_pending.yaml (commit e1e0fc0), before any probe or Powerprop result
                "C4": 0.0, "C5a": 0.0, "C5b": 0.0, "C9c": 0.02, "C7": 1.5, "C8a": 0.1, "C8b": 0.02,
                "C9d": 0.1,
                # declared with the budget rule (issue 13), before any run at another budget
                "B3": 0.95, "D1": 0.05, "D2": 0.0, "D3a": -0.02, "D3b": -0.02,
                # declared in claims_pending.yaml (issue 15), before any continual run of Adagrad
                "E1": 0.0, "E2": 0.0,
                # declared in claims_pending.yaml (issue 31, commit 78c1bce), before any batch-order
                # control run, any shampoo-reset-stats run and any 5-seed ablation result
                "C9e": 0.0, "C9f": 0.0, "C9g": 0.0, "A4": 0.0, "A5": 0.0, "A6": 0.0, "E5": 0.0}
    claims = {c["id"]: c for c in C.load_claims(PAPER / "claims.yaml")}
    assert {k: claims[k]["test"]["threshold"] for k in declared} == declared
    assert [(claims[k]["test"]["a"], claims[k]["test"]["b"], claims[k]["test"]["op"]) for k in ("E1", "E2", "E5")] == [
        ("adagrad", ["adamw"], "<"), ("shampoo", ["adagrad"], "<"), ("shampoo", ["adagrad"], "<")]
    # Issue 31's direction and comparison, as declared: the floor margin must be positive; the
    # ablation variant minus Shampoo must be positive, on permuted only.
    assert {k: (claims[k]["test"]["type"], claims[k]["test"]["op"]) for k in ("C9e", "C9f", "C9g")} == {
        k: ("floor", ">") for k in ("C9e", "C9f", "C9g")}
    assert {k: (claims[k]["test"]["a"], claims[k]["over"]["benchmark"]) for k in ("A4", "A5", "A6")} == {
        "A4": ("shampoo-diag", ["permuted"]), "A5": ("shampoo-reset-stats", ["permuted"]),
        "A6": ("shampoo-ema", ["permuted"])}


def test_superseded_claims_record_the_verdict_they_had():
    """A superseded claim's last_verdict is the verdict the committed paper/verdicts.json gave it at
    last_verdict_commit: the table of superseded claims cannot misstate the old verdict."""
    import json
    import subprocess
    claims = C.load_claims(PAPER / "claims.yaml")
    superseded = [c for c in claims if "superseded_by" in c]
    assert {c["id"] for c in superseded} == {"C9a", "C9b", "C9c", "C9d", "A1", "A2", "A3", "E2"}
    for claim in superseded:
        shown = subprocess.run(["git", "show", f"{claim['last_verdict_commit']}:paper/verdicts.json"], cwd=PAPER.parent,
                               capture_output=True, text=True, check=True).stdout
        assert json.loads(shown)[claim["id"]] == claim["last_verdict"], claim["id"]

