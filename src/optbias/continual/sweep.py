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

Whether a candidate learned at all is recorded next to its score, by the learned rule of
``optbias.continual.metrics`` (declared before the runs it decides): on each benchmark, the mean
held-out learning accuracy over the validation seeds (a diverged seed counting 0) must be >=
chance + (1 - chance) / 2, with chance = 1 / classes per task (0.75 on class-incremental pairs,
0.55 on permuted). A candidate learned when it learned on every benchmark it was swept on;
``selected_learned`` says whether the chosen one did. The flag does not change the choice: a sweep
whose candidates all fail still picks the least bad one, and ``selected_learned: false`` says so.

Used by the continual-learning sweep (``sweep_select``) and, per method, by the Powerprop
experiment (``optbias.powerprop.runs.sweep_method``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .metrics import learned
from .summary import chance_of


def run_score(run: Mapping) -> float:
    """A sweep run's score: its ``validation_score``, or 0 when it diverged."""
    return float(run["validation_score"]) if run["status"] == "ok" else 0.0


def select(runs: Sequence[Mapping], config_lrs: Mapping[str, float],
           chance: Mapping[str, float] | None = None) -> dict:
    """Per optimizer: every candidate's scores (per benchmark and seed), the chosen lr, and checks.

    ``runs``: sweep runs, each with ``optimizer``, ``benchmark``, ``seed``, ``status``,
    ``validation_score`` (a fraction in [0, 1]) and ``spec.optimizer_cfg.lr``, and for the learned
    flags ``spec.benchmark_cfg``; ``config_lrs``: the lr the config uses; ``chance``: benchmark ->
    chance accuracy, for benchmarks whose runs carry no ``spec.benchmark_cfg`` (a benchmark not
    named here takes its chance from its runs: ``optbias.continual.summary.chance_of``).

    Returns optimizer -> {candidates: [{lr, score, per_benchmark, per_seed, diverged_seeds,
    eligible, learned_per_benchmark, learned}], selected_lr, selected_has_diverged_seed,
    selected_learned, chance_accuracy, config_lr, config_matches, edge_of_grid}. Scores are
    fractions; ``chance_accuracy`` is benchmark -> chance (None where unknown).
    ``learned_per_benchmark[b]`` is the learned rule (``optbias.continual.metrics.learned``) on the
    candidate's per-seed scores on b: mean >= chance + (1 - chance) / 2 (0.75 on pairs, 0.55 on
    permuted), None when b's chance is unknown; ``learned`` is true when it learned on every
    benchmark, false when it failed on one, else None; ``selected_learned`` is the chosen
    candidate's ``learned``. Raises ``ValueError`` when the runs of one benchmark disagree on the
    chance accuracy (``chance_of``), ``KeyError`` on a run without the keys above.
    """
    table: dict[str, dict[float, dict[str, dict[int, float]]]] = {}
    diverged: dict[tuple[str, float], list[str]] = {}
    for run in runs:
        lr = float(run["spec"]["optimizer_cfg"]["lr"])
        seed = int(run["seed"])
        table.setdefault(run["optimizer"], {}).setdefault(lr, {}).setdefault(run["benchmark"], {})[seed] = run_score(run)
        if run["status"] != "ok":
            diverged.setdefault((run["optimizer"], lr), []).append(f"{run['benchmark']}/seed{seed}")
    chances = {b: (chance or {}).get(b, None) for b in {run["benchmark"] for run in runs}}
    for b in chances:
        if chances[b] is None:
            chances[b] = chance_of([run for run in runs if run["benchmark"] == b])
    out = {}
    for name, by_lr in table.items():
        candidates = []
        for lr in sorted(by_lr):
            per_benchmark = {b: sum(s.values()) / len(s) for b, s in by_lr[lr].items()}
            bad = sorted(diverged.get((name, lr), []))
            # The learned rule on the held-out learning accuracy, per benchmark (its own chance level).
            learned_per_benchmark = {b: None if chances[b] is None else learned(list(s.values()), chances[b])
                                     for b, s in by_lr[lr].items()}
            flags = list(learned_per_benchmark.values())
            candidates.append({"lr": lr, "score": sum(per_benchmark.values()) / len(per_benchmark),
                               "per_benchmark": per_benchmark,
                               "per_seed": {b: {str(k): v for k, v in sorted(s.items())} for b, s in by_lr[lr].items()},
                               "diverged_seeds": bad, "eligible": not bad,
                               "learned_per_benchmark": learned_per_benchmark,
                               "learned": False if False in flags else (None if None in flags else True)})
        pool = [c for c in candidates if c["eligible"]] or candidates
        best = max(pool, key=lambda c: c["score"])  # max keeps the first (smallest lr) of ties
        config = config_lrs.get(name)
        out[name] = {
            "candidates": candidates,
            "selected_lr": best["lr"],
            "selected_has_diverged_seed": not best["eligible"],
            "selected_learned": best["learned"],
            "chance_accuracy": {b: chances[b] for b in sorted({b for s in by_lr.values() for b in s})},
            "config_lr": config,
            "config_matches": config is not None and abs(float(config) - best["lr"]) <= 1e-12 * best["lr"],
            "edge_of_grid": best["lr"] in (min(by_lr), max(by_lr)),
        }
    return out
