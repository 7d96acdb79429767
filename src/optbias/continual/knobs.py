"""The retention rule: how a knob that trades plasticity for retention is chosen (issue 33).

Declared in paper/designing_an_optimizer.md before any continual-learning run of the optimizers it
tunes. The learning-rate rule (``optbias.continual.sweep``) scores plasticity only and would always
choose "no memory"; a knob such as Memory Shampoo's ``memory_power`` or OWM's ``alpha`` is chosen
by what it is for:

* one run per candidate value and validation seed (``sweep.seeds``, none of them reported), with
  ``sweep.validation_fraction`` of every task's training split held out;
* the score of a run is its held-out average accuracy after the last task, the mean of the last row
  of the held-out accuracy matrix (``retention_score``, R_val[-1]); a diverged run scores 0;
* the score of a candidate is the mean over validation seeds, then over benchmarks;
* a candidate with a diverged seed, or one that did not learn on some benchmark (the learned rule of
  ``optbias.continual.metrics`` on its held-out learning accuracy), is not eligible;
* the eligible candidate with the highest score wins; ties go to the one listed first in the grid
  (the config lists the weakest memory first). When none is eligible, the best of all, flagged.

``second_protocol`` applies the same score to the learning-rate sweep's runs of the baselines, so
that the report can show which learning rate a retention-minded practitioner would have chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .metrics import learned
from .summary import chance_of


def value_label(value: Any) -> str:
    """A knob value as it appears in paths and wildcards: ``float(value)`` in ``%g`` form (0.5 -> "0.5")."""
    return f"{float(value):g}"


def with_option(entry: Mapping[str, Any], option: str, value: Any) -> dict:
    """A copy of optimizer entry ``entry`` with ``option`` set to ``float(value)``. Raises ``KeyError``
    when the entry has no such key: a knob tunes what the entry already sets."""
    if option not in entry:
        raise KeyError(f"the optimizer entry {dict(entry)} has no {option!r} to tune; set it in the entry first")
    return {**entry, option: float(value)}


def retention_score(run: Mapping) -> float:
    """A validation run's retention score: its held-out average accuracy after the last task,
    mean_j R_val[T-1][j] (a fraction in [0, 1]); 0 when the run diverged. Raises ``KeyError`` on a
    run trained without a held-out split (no ``R_val``)."""
    if run["status"] != "ok":
        return 0.0
    last = run["R_val"][-1]
    return sum(last) / len(last)


def learning_score(run: Mapping) -> float:
    """A validation run's held-out learning accuracy (its ``validation_score``); 0 when it diverged."""
    return float(run["validation_score"]) if run["status"] == "ok" else 0.0


def _table(runs: Sequence[Mapping], key) -> tuple[dict, dict, dict]:
    """(name -> value -> benchmark -> seed -> (retention, learning)), diverged seeds, chance per benchmark."""
    table: dict[str, dict[float, dict[str, dict[int, tuple[float, float]]]]] = {}
    diverged: dict[tuple[str, float], list[str]] = {}
    for run in runs:
        value, seed = key(run), int(run["seed"])
        table.setdefault(run["optimizer"], {}).setdefault(value, {}).setdefault(run["benchmark"], {})[seed] = (
            retention_score(run), learning_score(run))
        if run["status"] != "ok":
            diverged.setdefault((run["optimizer"], value), []).append(f"{run['benchmark']}/seed{seed}")
    chances = {b: chance_of([r for r in runs if r["benchmark"] == b]) for b in {r["benchmark"] for r in runs}}
    return table, diverged, chances


def _candidate(value: float, by_benchmark: Mapping[str, Mapping[int, tuple[float, float]]], bad: list[str],
               chances: Mapping[str, float | None]) -> dict:
    retention = {b: sum(r for r, _ in s.values()) / len(s) for b, s in by_benchmark.items()}
    learning = {b: sum(lr for _, lr in s.values()) / len(s) for b, s in by_benchmark.items()}
    learned_per_benchmark = {b: None if chances[b] is None else learned([lr for _, lr in s.values()], chances[b])
                             for b, s in by_benchmark.items()}
    flags = list(learned_per_benchmark.values())
    learned_all = False if False in flags else (None if None in flags else True)
    return {"value": value, "score": sum(retention.values()) / len(retention), "per_benchmark": retention,
            "per_seed": {b: {str(k): v[0] for k, v in sorted(s.items())} for b, s in by_benchmark.items()},
            "learning_accuracy": learning, "learned_per_benchmark": learned_per_benchmark, "learned": learned_all,
            "diverged_seeds": sorted(bad), "eligible": not bad and learned_all is not False}


def select(runs: Sequence[Mapping], knobs: Mapping[str, Mapping[str, Any]],
           config_values: Mapping[str, Any]) -> dict:
    """Per tuned optimizer: every candidate's retention scores, the chosen value, and checks.

    ``runs``: knob runs (``optimizer``, ``benchmark``, ``seed``, ``status``, ``R_val``,
    ``validation_score``, ``spec.optimizer_cfg`` and ``spec.benchmark_cfg``); ``knobs``: the
    config's ``knobs`` block (name -> {option, grid}); ``config_values``: name -> the value the
    config's entry uses. Returns name -> {option, candidates (grid order): [{value, score,
    per_benchmark, per_seed, learning_accuracy, learned_per_benchmark, learned, diverged_seeds,
    eligible}], selected_value, selected_eligible, selected_learned, config_value, config_matches,
    edge_of_grid}. Scores are fractions. Raises ``KeyError`` on a run without those keys, or of
    an optimizer ``knobs`` does not tune.
    """
    def key(run: Mapping) -> float:
        return float(run["spec"]["optimizer_cfg"][knobs[run["optimizer"]]["option"]])

    table, diverged, chances = _table(runs, key)
    out = {}
    for name, knob in knobs.items():
        by_value = table.get(name, {})
        grid = [float(v) for v in knob["grid"]]  # grid order: the weakest memory first
        missing = [v for v in grid if v not in by_value]
        if missing:  # a value the rule must score has no run: never choose among what happens to be there
            raise KeyError(f"knobs.{name}: no run of the candidates {missing} among the inputs")
        candidates = [_candidate(v, by_value[v], diverged.get((name, v), []), chances) for v in grid]
        pool = [c for c in candidates if c["eligible"]] or candidates
        best = max(pool, key=lambda c: c["score"])  # max keeps the first of ties: the weaker memory
        config = config_values.get(name)
        out[name] = {
            "option": knob["option"],
            "candidates": candidates,
            "selected_value": best["value"],
            "selected_eligible": best["eligible"],
            "selected_learned": best["learned"],
            "config_value": config,
            "config_matches": config is not None and abs(float(config) - best["value"]) <= 1e-12 * abs(best["value"]),
            "edge_of_grid": best["value"] in (grid[0], grid[-1]),
        }
    return out


def second_protocol(sweep_runs: Sequence[Mapping], plasticity_choice: Mapping[str, Any]) -> dict:
    """The retention rule applied to the learning-rate sweep's runs: per swept optimizer, each
    learning rate's retention score, the rate the retention rule would choose (eligible candidates
    first, ties: the smaller rate), and the rate the learning-rate rule chose (``plasticity_choice``,
    name -> lr). Returns name -> {candidates: [{lr, score, per_benchmark, learned, eligible}],
    retention_lr, plasticity_lr, same}."""
    table, diverged, chances = _table(sweep_runs, lambda run: float(run["spec"]["optimizer_cfg"]["lr"]))
    out = {}
    for name, by_lr in table.items():
        candidates = [{"lr": c.pop("value"), **c} for c in
                      (_candidate(lr, by_lr[lr], diverged.get((name, lr), []), chances) for lr in sorted(by_lr))]
        pool = [c for c in candidates if c["eligible"]] or candidates
        best = max(pool, key=lambda c: c["score"])
        chosen = plasticity_choice.get(name)
        out[name] = {"candidates": candidates, "retention_lr": best["lr"], "plasticity_lr": chosen,
                     "same": chosen is not None and abs(float(chosen) - best["lr"]) <= 1e-12 * best["lr"]}
    return out
