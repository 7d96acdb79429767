"""Per-optimizer summaries of the probes: mean and Student-t 95% CI over seeds, per-seed values kept.

These are the scalars claims 4 and 5 of PAPER.md are checked on (final-checkpoint cross-class
cosine and effective rank per hidden layer), plus representation forgetting (linear probe vs head
accuracy on old tasks after the last task). Per-seed values travel with every mean, so an audit
can test a difference between two optimizers seed by seed (seeds are paired: same initialization).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..stats import seed_stat

LAYER_SCALARS = ("cosine_mean_off_diagonal", "erank", "erank_centered", "srank", "srank_centered",
                 "activation_sparsity", "dead_units")


def _old_task_means(run: dict, layer: int) -> dict[str, float]:
    """Mean over old tasks j < T-1 of P[T-1][j], R[T-1][j] and P[j][j] (None if a value is missing)."""
    P, R = run["P"][str(layer)], run["R"]
    last = len(R) - 1
    old = range(last)
    out = {}
    for key, values in (("probe_accuracy_old_tasks", [P[last][j] for j in old]),
                        ("head_accuracy_old_tasks", [R[last][j] for j in old]),
                        ("probe_accuracy_when_learned", [P[j][j] for j in old])):
        out[key] = None if not values or any(v is None for v in values) else sum(values) / len(values)
    return out


def summarize_probes(runs: Sequence[dict], order: Sequence[str]) -> dict:
    """Final-checkpoint probe scalars per optimizer and hidden layer, with CIs over seeds."""
    if not runs:
        raise ValueError("no probes.json to summarize")
    by_optimizer: dict[str, list[dict]] = {name: [] for name in order}
    for run in runs:
        by_optimizer.setdefault(run["optimizer"], []).append(run)
    first = runs[0]
    layers = first["hidden_layers"]
    out: dict = {"benchmark": first["benchmark"], "order": list(by_optimizer), "hidden_layers": layers,
                 "definitions": first["definitions"], "settings": first["settings"], "optimizers": {}}
    for name, group in by_optimizer.items():
        if not group:
            continue
        group = sorted(group, key=lambda r: r["seed"])
        last = len(group[0]["tasks"]) - 1
        entry: dict = {"seeds": [r["seed"] for r in group], "final_checkpoint": last, "layers": {},
                       "final_cosine_matrix_mean": {}, "weights": {}, "representation_forgetting": {}}
        for layer in layers:
            recs = [next(x for x in r["representations"] if x["checkpoint"] == last and x["layer"] == layer)
                    for r in group]
            entry["layers"][str(layer)] = {key: seed_stat([x[key] for x in recs]) for key in LAYER_SCALARS}
            n = len(recs[0]["cosine_matrix"])
            entry["final_cosine_matrix_mean"][str(layer)] = [
                [_nanmean([x["cosine_matrix"][a][b] for x in recs]) for b in range(n)] for a in range(n)]
        for matrix in [w["matrix"] for w in group[0]["weights"] if w["checkpoint"] == last]:
            recs = [next(w for w in r["weights"] if w["checkpoint"] == last and w["matrix"] == matrix) for r in group]
            entry["weights"][matrix] = {key: seed_stat([w[key] for w in recs]) for key in ("erank", "srank")}
        for layer in map(int, group[0]["P"]):
            per_seed = [_old_task_means(r, layer) for r in group]
            entry["representation_forgetting"][str(layer)] = {
                key: seed_stat([s[key] for s in per_seed]) for key in per_seed[0]
                if all(s[key] is not None for s in per_seed)}
        # The claims read the last hidden layer whatever the depth: a stable key for it.
        entry["last_layer"] = entry["layers"][str(layers[-1])]
        out["optimizers"][name] = entry
    return out


def _nanmean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None
