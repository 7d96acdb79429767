"""The training budget (epochs per task): the rule that chooses it, and forgetting against it.

**The budget rule**, declared before any forgetting number was looked at (issue 13, config
``budget:``). Forgetting is only meaningful for a task that was learned, so the budget is the
smallest number of epochs per task, from a declared grid, at which *every* headline optimizer
learns each task to a declared level:

* the *learning score* of an (optimizer, epochs) is its learning accuracy on held-out data,
  mean_i R_val[i][i] (the accuracy on the held-out part of task i right after learning task i,
  ``optbias.continual.metrics.learning_accuracy`` on ``R_val``), averaged over the validation
  seeds; a diverged validation run scores 0;
* ``level: L`` (an absolute level): the optimizer meets the budget when its score is >= L;
* ``plateau_tolerance: d`` (its own plateau): when its score is >= its score at the largest
  budget of the grid minus d;
* the chosen budget is the smallest one of the grid that every optimizer meets. When none is
  met, the largest is chosen and ``level_reached`` is false (the audit's protocol claim fails).

It runs on validation seeds that are not reported seeds, on a held-out split of every task's
training data (the same split as the learning-rate sweep), never on the test split.

**Budget and learning rate are chosen one after the other, and the config holds a fixed point
of the two**: the lr sweep runs at the config's budget, the budget rule at the config's learning
rates; ``config_matches`` in both outputs (claims S1 and B1) says whether the config is such a
fixed point. Adam keeps the paper's two learning rates, so only the budget is chosen for it.

**Forgetting against the budget** (``summarize_budget``): every headline optimizer on every
benchmark at every budget of the grid, on the reported seeds of ``budget.seeds``; the summary
holds per budget what ``optbias.continual.summary.summarize_runs`` holds per benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .summary import SCALARS, summarize_runs
from .types import RunMetrics


def epochs_of(run: RunMetrics) -> int:
    """The run's epochs per task (from its spec)."""
    return int(run["spec"]["benchmark_cfg"]["epochs_per_task"])


def learning_score(run: RunMetrics) -> float:
    """A validation run's learning score: mean_i R_val[i][i] (its ``validation_score``); 0 when diverged."""
    return float(run["validation_score"]) if run.get("status", "ok") == "ok" else 0.0


def meets(score: float, plateau: float | None, criterion: Mapping[str, float]) -> bool:
    """Whether a learning score meets the criterion: ``{"level": L}`` (score >= L) or
    ``{"plateau_tolerance": d}`` (score >= ``plateau`` - d, plateau = the score at the largest budget).

    Raises ``ValueError`` on a criterion with neither or both keys.
    """
    if ("level" in criterion) == ("plateau_tolerance" in criterion):
        raise ValueError(f"budget criterion {dict(criterion)}: give exactly one of level or plateau_tolerance")
    if "level" in criterion:
        return score >= float(criterion["level"])
    return plateau is not None and score >= plateau - float(criterion["plateau_tolerance"])


def select_budget(runs: Sequence[RunMetrics], criteria: Mapping[str, Mapping], config_epochs: Mapping[str, int],
                  order: Sequence[str]) -> dict:
    """Apply the budget rule per benchmark to the validation runs.

    ``runs``: every validation run (any benchmark, optimizer, budget, validation seed), each with
    ``validation_score``; ``criteria``: benchmark -> ``{"grid": [epochs, ...], "level": L}`` or
    ``{"grid": [...], "plateau_tolerance": d}``; ``config_epochs``: benchmark -> the config's
    ``epochs_per_task``; ``order``: the headline optimizers, every one of which must meet the budget.

    Returns benchmark -> {criterion, grid, candidates: [{epochs, all_meet, optimizers: {name:
    {score, per_seed: {seed: score}, diverged_seeds, meets}}}], selected_epochs, config_epochs,
    config_matches, level_reached, edge_of_grid}. Raises ``ValueError`` when a (benchmark,
    optimizer, budget) of the grid has no run or other validation seeds than the rest (the rule
    cannot be applied to a partial grid), or when a criterion has neither or both of ``level``
    and ``plateau_tolerance`` (``meets``).

    With ``plateau_tolerance`` the largest budget always meets the criterion, so ``level_reached``
    is true by construction; a choice at the largest budget (``edge_of_grid``) then says that no
    smaller budget is on every optimizer's plateau, and learning may still be rising there.
    """
    scores: dict[tuple[str, str, int], dict[int, float]] = {}
    diverged: dict[tuple[str, str, int], list[int]] = {}
    for run in runs:
        key = (run["benchmark"], run["optimizer"], epochs_of(run))
        scores.setdefault(key, {})[int(run["seed"])] = learning_score(run)
        if run.get("status", "ok") != "ok":
            diverged.setdefault(key, []).append(int(run["seed"]))
    out = {}
    for benchmark, criterion in criteria.items():
        grid = sorted(int(e) for e in criterion["grid"])
        rule = {k: v for k, v in criterion.items() if k != "grid"}
        missing = [(name, e) for name in order for e in grid if (benchmark, name, e) not in scores]
        if missing:
            raise ValueError(f"budget rule, {benchmark}: no validation run for {missing}; every headline optimizer "
                             "needs a run at every budget of the grid")
        seed_sets = {(name, e): sorted(scores[(benchmark, name, e)]) for name in order for e in grid}
        if len({tuple(s) for s in seed_sets.values()}) > 1:
            raise ValueError(f"budget rule, {benchmark}: the validation seeds differ between cells: {seed_sets}; "
                             "every (optimizer, budget) needs a run on every validation seed")

        def mean_score(name: str, e: int) -> float:
            per_seed = scores[(benchmark, name, e)]
            return sum(per_seed.values()) / len(per_seed)

        plateau = {name: mean_score(name, grid[-1]) for name in order}
        candidates = []
        for e in grid:
            entry = {}
            for name in order:
                score = mean_score(name, e)
                entry[name] = {"score": score,
                               "per_seed": {str(s): v for s, v in sorted(scores[(benchmark, name, e)].items())},
                               "diverged_seeds": sorted(diverged.get((benchmark, name, e), [])),
                               "meets": meets(score, plateau[name], rule)}
            candidates.append({"epochs": e, "all_meet": all(v["meets"] for v in entry.values()), "optimizers": entry})
        chosen = next((c for c in candidates if c["all_meet"]), candidates[-1])
        config = config_epochs.get(benchmark)
        out[benchmark] = {
            "criterion": rule,
            "grid": grid,
            "candidates": candidates,
            "selected_epochs": chosen["epochs"],
            "level_reached": chosen["all_meet"],
            "config_epochs": config,
            "config_matches": config is not None and int(config) == chosen["epochs"],
            "edge_of_grid": chosen["epochs"] == grid[-1] and len(grid) > 1,
        }
    return out


def summarize_budget(runs: Sequence[RunMetrics], order: Sequence[str],
                     selected: Mapping[str, Mapping] | None = None) -> dict:
    """Forgetting against the budget: per benchmark and budget, ``summarize_runs`` of that budget's runs.

    ``runs``: the experiment's runs (reported seeds; any benchmark and budget); ``order``: legend
    order; ``selected``: the budget rule's output, to record the chosen budget next to the curves.
    Returns benchmark -> {grid, selected_epochs, order, epochs: {"<E>": {"optimizers": {name:
    {seeds, diverged_seeds, chance_accuracy, learned, <scalar>: seed_stat, ...}}}}}: every scalar of
    ``SCALARS`` (average forgetting, average accuracy, accuracy on the old tasks, learning accuracy,
    BWT; fractions) with per-seed values and a 95% CI. The per-seed accuracy matrices are left out
    (they are in the runs).

    ``chance_accuracy`` and ``learned`` are ``summarize_runs``'s, per budget: an optimizer learned
    at a budget when its mean learning accuracy over the seeds is >= chance + (1 - chance) / 2
    (0.75 on class-incremental pairs, 0.55 on permuted; ``optbias.continual.metrics.learned``); at a
    budget where it did not, its forgetting is not retention (the figure greys it out). ``learned``
    is None when the runs carry no ``spec.benchmark_cfg``. Raises ``KeyError`` on a run without
    ``spec.benchmark_cfg.epochs_per_task``.
    """
    out: dict = {}
    for benchmark in sorted({r["benchmark"] for r in runs}):
        mine = [r for r in runs if r["benchmark"] == benchmark]
        grid = sorted({epochs_of(r) for r in mine})
        by_epochs = {}
        for e in grid:
            summary = summarize_runs([r for r in mine if epochs_of(r) == e], order)
            by_epochs[str(e)] = {"optimizers": {
                name: {k: v for k, v in entry.items()
                       if k in ("seeds", "diverged_seeds", "chance_accuracy", "learned", *SCALARS)}
                for name, entry in summary["optimizers"].items()}}
        out[benchmark] = {"grid": grid, "order": list(order), "epochs": by_epochs,
                          "selected_epochs": (selected or {}).get(benchmark, {}).get("selected_epochs")}
    return out


def describe_selection(selection: Mapping[str, Mapping]) -> list[str]:
    """One line per benchmark for the job's log: every budget's scores and the choice."""
    lines = []
    for benchmark, entry in selection.items():
        cells = []
        for c in entry["candidates"]:
            worst = min(c["optimizers"].items(), key=lambda kv: kv[1]["score"])
            cells.append(f"{c['epochs']}: {'all meet' if c['all_meet'] else 'not met'} (lowest {worst[0]} "
                         f"{worst[1]['score']:.3f})")
        lines.append(f"{benchmark} ({entry['criterion']}): {'; '.join(cells)} -> {entry['selected_epochs']} epochs per "
                     f"task (config {entry['config_epochs']}{'' if entry['config_matches'] else ', DIFFERENT'})")
    return lines
