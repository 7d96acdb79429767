"""Summary of the Powerprop experiment: per method, the chosen lr and mean and 95% CI over seeds of
test accuracy, near-zero fraction and accuracy under magnitude pruning (no torch needed).

Reads what ``optbias.powerprop.runs.run_method`` wrote for each method: its results and its
learning-rate selection.
"""

from __future__ import annotations

from typing import Any

from ..stats import seed_stat


def summarize(results: list[dict], selections: list[dict], order: list[str]) -> dict:
    """Per method: the selected lr, and per-seed values with mean and Student-t 95% CI of test
    accuracy, near-zero fraction and accuracy at each pruning level (diverged seeds left out and counted).

    ``results`` and ``selections`` are the methods' results and lr-selection JSONs (``run_method``);
    ``selection`` in the output lists every method's candidates and choice. Raises ``ValueError``
    when a method of ``order`` has no results.
    """
    by_name = {r["method"]: r for r in results}
    missing = [name for name in order if name not in by_name]
    if missing:
        raise ValueError(f"powerprop summary: no results for {', '.join(missing)}")
    out: dict[str, Any] = {"task": by_name[order[0]]["task"], "order": list(order), "methods": {}}
    for name in order:
        result = by_name[name]
        ok = [r for r in result["runs"] if r["status"] == "ok"]
        entry: dict[str, Any] = {
            "form": result["form"], "lr": result["lr"],
            "alpha": result["method_cfg"].get("reparam_alpha", result["method_cfg"]["optimizer"].get("alpha")),
            "optimizer": result["method_cfg"]["optimizer"],
            "seeds": [r["seed"] for r in ok],
            "diverged_seeds": [r["seed"] for r in result["runs"] if r["status"] != "ok"],
        }
        if ok:
            entry["test_accuracy"] = seed_stat([r["test_accuracy"] for r in ok])
            entry["sparsity_fraction"] = seed_stat([r["sparsity_fraction"] for r in ok])
            entry["pruned_accuracy"] = {p: seed_stat([r["pruned_accuracy"][p] for r in ok])
                                        for p in ok[0]["pruned_accuracy"]}
        out["methods"][name] = entry
    first = by_name[order[0]]
    out["sparsity_threshold"] = first["sparsity_threshold"]
    out["prune_fractions"] = first["prune_fractions"]
    out["sparsity_definition"] = (f"fraction of Linear weights with |w| < {first['sparsity_threshold']:g} x max|w| "
                                  "(global max over all weight matrices; biases excluded)")
    out["pruning_definition"] = "global one-shot magnitude pruning of Linear weights, no retraining; test accuracy"
    out["selection"] = {sel["method"]: {"selected_lr": sel["selected_lr"], "edge_of_grid": sel["edge_of_grid"],
                                        # older selections (one validation seed) did not record it
                                        "selected_has_diverged_seed": sel.get("selected_has_diverged_seed", False),
                                        "validation_seeds": sel.get("seeds", [sel.get("seed")]),
                                        "candidates": sel["candidates"]} for sel in selections}
    return out
