"""Summaries judge whether each run set learned at all, and the ablation table says so (known answers)."""

from __future__ import annotations

import pytest

from optbias.continual.summary import ablation_table, chance_of, summarize_by_benchmark, summarize_runs

CFG = {"class_incremental": {"epochs_per_task": 1, "batch_size": 32},
       "permuted": {"n_tasks": 3, "epochs_per_task": 1, "batch_size": 32}}


def run(benchmark: str, optimizer: str, seed: int, diag: float, old: float = 0.0, cfg: dict | None = None) -> dict:
    """A finished run whose every task is learned to ``diag`` and ends at ``old`` once left behind."""
    T = 5 if benchmark == "class_incremental" else 3
    R = [[diag if j == i else (old if j < i else 0.0) for j in range(T)] for i in range(T)]
    return {"benchmark": benchmark, "optimizer": optimizer, "seed": seed, "status": "ok", "R": R,
            "tasks": [f"t{j}" for j in range(T)], "spec": {"benchmark_cfg": cfg or CFG[benchmark]}}


def test_chance_level_runs_are_flagged_not_learned():
    runs = ([run("class_incremental", "shampoo-nograft", s, 0.193, 0.193) for s in (0, 1)]
            + [run("class_incremental", "shampoo", s, 0.75, 0.4) for s in (0, 1)])
    out = summarize_runs(runs, ["shampoo", "shampoo-nograft"])["optimizers"]
    nograft, shampoo = out["shampoo-nograft"], out["shampoo"]
    assert nograft["chance_accuracy"] == 0.5 and nograft["learned"] is False
    assert nograft["learning_accuracy"]["mean"] == pytest.approx(0.193)
    assert nograft["average_forgetting"]["mean"] == pytest.approx(0.0)  # nothing learned, nothing to forget
    assert shampoo["learned"] is True  # learning accuracy exactly 0.75 on pairs: learned


def test_permuted_chance_and_threshold():
    out = summarize_runs([run("permuted", "a", 0, 0.55), run("permuted", "b", 0, 0.105)], ["a", "b"])["optimizers"]
    assert out["a"]["chance_accuracy"] == 0.1 and out["a"]["learned"] is True
    assert out["b"]["learned"] is False


def test_learned_is_not_judged_without_a_chance_level():
    bare = {k: v for k, v in run("permuted", "a", 0, 0.9).items() if k != "spec"}  # a hand-made run
    entry = summarize_runs([bare], ["a"])["optimizers"]["a"]
    assert entry["chance_accuracy"] is None and entry["learned"] is None
    assert chance_of([]) is None and chance_of([{**bare, "benchmark": "b", "spec": {"benchmark_cfg": {}}}]) is None
    mixed = [run("class_incremental", "a", 0, 0.9), run("class_incremental", "a", 1, 0.9, cfg={"pairs": [[0, 1, 2]]})]
    with pytest.raises(ValueError, match="different chance accuracies"):
        summarize_runs(mixed, ["a"])


def test_ablation_table_says_did_not_learn_instead_of_forgetting():
    runs = [run(b, v, s, 0.97 if v == "shampoo" else (0.193 if b == "class_incremental" else 0.105), 0.3)
            for b in CFG for v in ("shampoo", "shampoo-nograft") for s in (0, 1)]
    table = ablation_table(summarize_by_benchmark(runs, ["shampoo", "shampoo-nograft"]))
    row = next(line for line in table.splitlines() if line.startswith("| shampoo-nograft"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "did not learn (learning accuracy 0.193, chance 0.5)"
    assert cells[2].startswith("~~") and cells[2].endswith("~~")  # its accuracy is struck, not read as retention
    assert cells[3].startswith("0.193 ")  # its learning accuracy is still shown
    assert cells[4] == "did not learn (learning accuracy 0.105, chance 0.1)"
    base = next(line for line in table.splitlines() if line.startswith("| shampoo |"))
    assert "did not learn" not in base and "~~" not in base
    assert "halfway from chance to perfect" in table
