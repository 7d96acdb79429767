"""The continual figures draw an entry that did not learn as such (grey, hatched, labelled), never as retention."""

from __future__ import annotations

import pytest

from optbias.continual import figures
from optbias.continual.budget import summarize_budget
from optbias.continual.summary import summarize_by_benchmark
from optbias.continual.sweep import select

CFG = {"class_incremental": {"epochs_per_task": 1, "batch_size": 8, "pairs": [[0, 1], [2, 3], [4, 5]]},
       "permuted": {"n_tasks": 3, "epochs_per_task": 1, "batch_size": 8}}
CHANCE = {"class_incremental": 0.5, "permuted": 0.1}


def run(benchmark: str, optimizer: str, seed: int, diag: float, old: float, epochs: int = 1) -> dict:
    R = [[diag if j == i else (old if j < i else 0.0) for j in range(3)] for i in range(3)]
    return {"benchmark": benchmark, "optimizer": optimizer, "seed": seed, "status": "ok", "R": R,
            "tasks": ["t0", "t1", "t2"], "spec": {"benchmark_cfg": {**CFG[benchmark], "epochs_per_task": epochs}}}


@pytest.fixture
def drawn(monkeypatch):
    """Each figure drawn (to PNG, as the pipeline does) and kept for inspection."""
    kept = []
    save = figures.save

    def keep(fig, paths):
        kept.append((fig, [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))],
                     [a for a in fig.findobj(lambda a: hasattr(a, "get_hatch")) if a.get_hatch() == "////"]))
        save(fig, paths)
    monkeypatch.setattr(figures, "save", keep)
    return kept


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_shampoo_ablation_greys_out_a_variant_that_did_not_learn(tmp_path, drawn):
    runs = [run(b, v, s, CHANCE[b] + 0.01 * s if v == "shampoo-nograft" else 0.97, 0.4 if v == "shampoo" else CHANCE[b])
            for b in CFG for v in ("shampoo", "shampoo-nograft") for s in (0, 1)]
    summary = summarize_by_benchmark(runs, ["shampoo", "shampoo-nograft"])
    figures.shampoo_ablation(summary, [tmp_path / "a.png"], "ablation")
    assert_png(tmp_path / "a.png")
    _, texts, hatched = drawn[0]
    assert any(t.startswith("did not learn\n(learning accuracy 0.505, chance 0.5)") for t in texts)
    assert len(hatched) >= 4  # forgetting and accuracy bars of the variant, on both benchmarks
    assert any("learned at \u2265 0.75" in t for t in texts) and any("learned at \u2265 0.55" in t for t in texts)


def test_budget_sensitivity_greys_out_a_budget_at_which_an_optimizer_did_not_learn(tmp_path, drawn):
    runs = [run(b, o, s, (CHANCE[b] if (o, e) == ("sgd", 1) else 0.95), 0.3, e)
            for b in CFG for o in ("sgd", "shampoo") for e in (1, 5) for s in (0, 1)]
    summary = summarize_budget(runs, ["sgd", "shampoo"], {b: {"selected_epochs": 5} for b in CFG})
    figures.budget_sensitivity(summary, [tmp_path / "b.png"], "budget")
    assert_png(tmp_path / "b.png")
    _, texts, hatched = drawn[0]
    assert texts.count("did not learn") == 4  # forgetting and old-task accuracy, on both benchmarks
    assert hatched and any(t.startswith("did not learn\n") for t in texts)  # the legend's entry


def test_lr_sweep_marks_the_band_where_candidates_did_not_learn(tmp_path, drawn):
    runs = []
    for b in CFG:
        for o, scores in (("sgd", (0.6, 0.9)), ("shampoo-nograft", (CHANCE[b], CHANCE[b] + 0.01))):
            for lr, score in zip((0.1, 1.0), scores):
                r = run(b, o, 1000, score, 0)
                r["spec"]["optimizer_cfg"], r["validation_score"] = {"lr": lr}, score
                runs.append(r)
    selected = select(runs, {})
    assert selected["shampoo-nograft"]["selected_learned"] is False
    figures.lr_sweep(selected, [tmp_path / "s.png"], "sweep")
    assert_png(tmp_path / "s.png")
    _, texts, hatched = drawn[0]
    assert "below 0.75: did not learn" in texts and "below 0.55: did not learn" in texts and hatched
    assert "shampoo-nograft (chosen lr did not learn)" in texts


def test_a_summary_without_learned_flags_is_drawn_as_before(tmp_path, drawn):
    runs = [run(b, v, s, 0.9, 0.4) for b in CFG for v in ("shampoo", "shampoo-diag") for s in (0, 1)]
    summary = summarize_by_benchmark(runs, ["shampoo", "shampoo-diag"])
    for b in summary.values():
        for entry in b["optimizers"].values():
            del entry["learned"], entry["chance_accuracy"]
    figures.shampoo_ablation(summary, [tmp_path / "old.png"], "ablation")
    assert_png(tmp_path / "old.png")
    _, texts, hatched = drawn[0]
    assert not hatched and not any("did not learn" in t for t in texts)


def test_a_single_seed_variant_that_did_not_learn_is_drawn(tmp_path, drawn):
    runs = [run("permuted", v, 0, 0.97 if v == "shampoo" else 0.1, 0.1) for v in ("shampoo", "shampoo-nograft")]
    summary = summarize_by_benchmark(runs, ["shampoo", "shampoo-nograft"])
    figures.shampoo_ablation(summary, [tmp_path / "one.png"], "ablation, one seed")
    assert_png(tmp_path / "one.png")
    assert any(t.startswith("did not learn\n(learning accuracy 0.100, chance 0.1)") for t in drawn[0][1])


def test_retention_plasticity_draws_every_optimizer_and_each_knob_as_a_curve(tmp_path, drawn):
    """Issue 33's figure on summaries built from runs: one point per optimizer on permuted, one bar per
    optimizer on class-incremental (hatched when it did not learn), one labelled curve per knob and
    benchmark with the chosen value circled."""
    from optbias.continual.knobs import select as select_knob
    runs = [run(b, o, s, CHANCE[b] if o == "owm" else 0.97, {"sgd": 0.1, "memory-shampoo": 0.8}.get(o, 0.0))
            for b in CFG for o in ("sgd", "memory-shampoo", "owm") for s in (0, 1)]
    summaries = summarize_by_benchmark(runs, ["sgd", "memory-shampoo", "owm"])
    knob_runs = []
    for value, last in ((0.0, 0.3), (0.5, 0.7)):
        for b in CFG:
            for s in (1000, 1001):
                r = run(b, "memory-shampoo", s, 0.97, last)
                r.update(R_val=r["R"], validation_score=0.97, spec={**r["spec"], "optimizer_cfg": {"memory_power": value}})
                knob_runs.append(r)
    knobs = select_knob(knob_runs, {"memory-shampoo": {"option": "memory_power", "grid": [0, 0.5]}},
                        {"memory-shampoo": 0.5})
    figures.retention_plasticity(summaries, knobs, ["sgd", "memory-shampoo", "owm"], [tmp_path / "r.png"], "rp")
    assert_png(tmp_path / "r.png")
    fig, texts, hatched = drawn[0]
    assert {"sgd", "memory-shampoo", "owm (did not learn)"} <= set(texts)  # permuted points, named
    assert texts.count("0") == 2 and texts.count("0.5") == 2  # each candidate labelled by its value, per benchmark
    assert len(hatched) == 1  # owm's class-incremental bar
    for ax, b in zip(fig.axes[2:], sorted(CFG)):  # one panel per benchmark, one curve per knob, the option named
        assert [line.get_label() for line in ax.get_lines()] == ["memory-shampoo (memory_power)"]
        assert ax.get_title().startswith(b)
