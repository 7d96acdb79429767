"""Learning-rate selection, with the rule fixed before any forgetting number is looked at.

The rule: for each swept optimizer, train once per candidate learning rate on a validation seed
(not one of the reported seeds), holding out part of every task's training split. The score of a
run is the accuracy on the held-out split of the task being learned, right after learning it,
averaged over tasks (``validation_score``): plasticity, never retention. The score of a learning
rate is the mean of its runs' scores over the benchmarks; the highest wins (ties: the smaller lr).
A diverged run scores 0. Forgetting plays no part in the choice.
"""

from __future__ import annotations

from collections.abc import Sequence


def select(runs: Sequence[dict], config_lrs: dict[str, float]) -> dict:
    """Return, per optimizer, every candidate's scores, the chosen lr and whether the config uses it."""
    table: dict[str, dict[float, dict[str, float]]] = {}
    for run in runs:
        lr = float(run["spec"]["optimizer_cfg"]["lr"])
        score = run["validation_score"] if run["status"] == "ok" else 0.0
        table.setdefault(run["optimizer"], {}).setdefault(lr, {})[run["benchmark"]] = score
    out = {}
    for name, by_lr in table.items():
        mean = {lr: sum(scores.values()) / len(scores) for lr, scores in by_lr.items()}
        best = max(sorted(mean), key=lambda lr: mean[lr])  # max keeps the first (smallest) of ties
        out[name] = {
            "candidates": [{"lr": lr, "score": mean[lr], "per_benchmark": by_lr[lr]} for lr in sorted(by_lr)],
            "selected_lr": best,
            "config_lr": config_lrs.get(name),
            "config_matches": config_lrs.get(name) is not None and abs(config_lrs[name] - best) <= 1e-12 * best,
            "edge_of_grid": best in (min(by_lr), max(by_lr)),
        }
    return out
