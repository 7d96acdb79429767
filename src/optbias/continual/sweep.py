"""Learning-rate selection, with the rule fixed before any forgetting number is looked at.

The rule: for each swept optimizer, train once per (candidate learning rate, validation seed)
with a held-out part of every task's training split; the validation seeds are not reported seeds.
The score of a run is the accuracy on the held-out split of the task being learned, right after
learning it, averaged over tasks (``validation_score``): plasticity, never retention. A diverged
run scores 0. The score of a learning rate is the mean over validation seeds, then over
benchmarks. A candidate with a diverged validation seed is not eligible: a learning rate next to
a cliff must still train on every validation seed. The eligible candidate with the highest score
wins (ties: the smaller lr); when none is eligible, the best of all, flagged by
``selected_has_diverged_seed``. Forgetting plays no part in the choice.

Used by the continual-learning sweep (``sweep_select``) and, per method, by the Powerprop
experiment (``optbias.powerprop.runs.sweep_method``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def run_score(run: Mapping) -> float:
    """A sweep run's score: its ``validation_score``, or 0 when it diverged."""
    return float(run["validation_score"]) if run["status"] == "ok" else 0.0


def select(runs: Sequence[Mapping], config_lrs: Mapping[str, float]) -> dict:
    """Per optimizer: every candidate's scores (per benchmark and seed), the chosen lr, and checks.

    ``runs``: sweep runs, each with ``optimizer``, ``benchmark``, ``seed``, ``status``,
    ``validation_score`` and ``spec.optimizer_cfg.lr``; ``config_lrs``: the lr the config uses.
    Returns optimizer -> {candidates: [{lr, score, per_benchmark, per_seed, diverged_seeds,
    eligible}], selected_lr, selected_has_diverged_seed, config_lr, config_matches, edge_of_grid}.
    """
    table: dict[str, dict[float, dict[str, dict[int, float]]]] = {}
    diverged: dict[tuple[str, float], list[str]] = {}
    for run in runs:
        lr = float(run["spec"]["optimizer_cfg"]["lr"])
        seed = int(run["seed"])
        table.setdefault(run["optimizer"], {}).setdefault(lr, {}).setdefault(run["benchmark"], {})[seed] = run_score(run)
        if run["status"] != "ok":
            diverged.setdefault((run["optimizer"], lr), []).append(f"{run['benchmark']}/seed{seed}")
    out = {}
    for name, by_lr in table.items():
        candidates = []
        for lr in sorted(by_lr):
            per_benchmark = {b: sum(s.values()) / len(s) for b, s in by_lr[lr].items()}
            bad = sorted(diverged.get((name, lr), []))
            candidates.append({"lr": lr, "score": sum(per_benchmark.values()) / len(per_benchmark),
                               "per_benchmark": per_benchmark,
                               "per_seed": {b: {str(k): v for k, v in sorted(s.items())} for b, s in by_lr[lr].items()},
                               "diverged_seeds": bad, "eligible": not bad})
        pool = [c for c in candidates if c["eligible"]] or candidates
        best = max(pool, key=lambda c: c["score"])  # max keeps the first (smallest lr) of ties
        config = config_lrs.get(name)
        out[name] = {
            "candidates": candidates,
            "selected_lr": best["lr"],
            "selected_has_diverged_seed": not best["eligible"],
            "config_lr": config,
            "config_matches": config is not None and abs(float(config) - best["lr"]) <= 1e-12 * best["lr"],
            "edge_of_grid": best["lr"] in (min(by_lr), max(by_lr)),
        }
    return out
