"""The claims audit: selectors, verdicts on fabricated outputs, provenance checks, the claims files."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import REPO
from optbias.paper import claims as C
from optbias.continual.metrics import summarize
from optbias.stats import bootstrap_diff_ci
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


def test_bootstrap_diff_ci_by_hand():
    assert bootstrap_diff_ci([1.0, 1.0], [0.25, 0.25]) == (0.75, 0.75, 0.75)
    mean, low, high = bootstrap_diff_ci([0.0, 1.0], [0.0])
    assert mean == 0.5 and low == 0.0 and high == 1.0


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
    assert row["verdict"] == C.INCONCLUSIVE  # the AdamW case is supported, the SGD case is not decided


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
    assert row["cases"][0]["ci95"] == pytest.approx([0.0, 0.05]) and row["verdict"] == C.INCONCLUSIVE


def test_a_diverged_seed_pairs_on_the_common_seeds():
    claim = real_claim("C3a")
    doc = permuted_summary({"sgd": [0.5, 0.5, 0.5], "adamw": [0.5, 0.5, 0.5], "shampoo": [0.9, 0.9, 0.9]})
    shampoo = doc["optimizers"]["shampoo"]
    shampoo["average_forgetting"]["per_seed"], shampoo["seeds"] = [0.1, 0.3], [0, 2]  # seed 1 diverged
    row = C.evaluate(claim, doc)
    # seeds 0 and 2: 0.1 - 0.5 and 0.3 - 0.5
    assert row["cases"][0]["value"] == pytest.approx(-0.3) and row["cases"][0]["n"] == 2
    assert row["cases"][0]["note"] == "paired over 2 seeds (seeds [1] missing on one side)"
    assert row["verdict"] == C.SUPPORTED


def test_unpaired_values_without_seed_lists_fall_back_to_independent_resampling():
    claim = {**real_claim("C3a"), "metric": {"select": "{optimizer}"}}
    row = C.evaluate(claim, {"shampoo": [0.1, 0.1], "sgd": [0.5, 0.5, 0.5], "adamw": [0.5, 0.4, 0.6]})
    assert row["cases"][0]["note"].startswith("unpaired") and row["cases"][0]["value"] == pytest.approx(-0.4)
    assert row["verdict"] == C.SUPPORTED


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
    doc = permuted_summary({"sgd": [0.9, 0.8], "adamw": [0.9, 0.9], "shampoo": [0.2, 0.3]})
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
    claims = C.load_claims(PAPER / "claims.yaml")
    cited = set(re.findall(r"\[claim:([A-Za-z][A-Za-z0-9_-]*)\]", (PAPER / "paper.md").read_text()))
    assert cited == {c["id"] for c in claims}


def test_pending_claims_are_well_formed_and_not_audited():
    pending = C.load_claims(PAPER / "claims_pending.yaml")
    audited = {c["id"] for c in C.load_claims_files([PAPER / "claims.yaml", PAPER / "claims_extended.yaml"])}
    # C4, C5 (as C5a, C5b), C7, C8a, C8b, C9c, C9d, E1 and E2 moved to claims.yaml, and E3a, E3b, E4
    # to claims_extended.yaml: nothing waits now.
    assert pending == [] and not audited & {c["id"] for c in pending}


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
                "E1": 0.0, "E2": 0.0}
    claims = {c["id"]: c for c in C.load_claims(PAPER / "claims.yaml")}
    assert {k: claims[k]["test"]["threshold"] for k in declared} == declared
    assert [(claims[k]["test"]["a"], claims[k]["test"]["b"], claims[k]["test"]["op"]) for k in ("E1", "E2")] == [
        ("adagrad", ["adamw"], "<"), ("shampoo", ["adagrad"], "<")]

