import numpy as np
import pytest

from optbias.stats import bootstrap_ci
from optbias.continual.summary import summarize_runs


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic():
    values = [0.1, 0.2, 0.3, 0.4, 0.5]
    mean, low, high = bootstrap_ci(values)
    assert mean == pytest.approx(0.3)
    assert low < mean < high
    assert min(values) <= low and high <= max(values)
    assert bootstrap_ci(values) == (mean, low, high)


def test_bootstrap_ci_of_constant_values_has_zero_width():
    assert bootstrap_ci([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7, 0.7))
    assert bootstrap_ci([0.4]) == (0.4, 0.4, 0.4)


def test_bootstrap_ci_matches_normal_theory_roughly():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    mean, low, high = bootstrap_ci(x)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)


def test_summarize_runs_groups_by_optimizer():
    def run(opt, seed, last):
        return {"benchmark": "b", "optimizer": opt, "seed": seed, "tasks": ["t0", "t1"],
                "R": [[1.0, 0.0], last], "average_accuracy": sum(last) / 2, "average_forgetting": 1 - last[0],
                "bwt": last[0] - 1, "mean_accuracy_old_tasks": last[0]}
    runs = [run("a", 0, [0.0, 1.0]), run("a", 1, [0.0, 1.0]), run("s", 0, [0.5, 1.0]), run("s", 1, [0.3, 1.0])]
    out = summarize_runs(runs, ["s", "a"])
    assert out["order"] == ["s", "a"]
    assert out["optimizers"]["a"]["average_forgetting"]["mean"] == pytest.approx(1.0)
    assert out["optimizers"]["s"]["mean_accuracy_old_tasks"]["mean"] == pytest.approx(0.4)
    # Learning accuracy next to forgetting, derived from R for runs that did not record it.
    assert out["optimizers"]["s"]["learning_accuracy"]["per_seed"] == [1.0, 1.0]
    assert out["optimizers"]["s"]["mean_accuracy_old_tasks"]["per_seed"] == [0.5, 0.3]
    assert out["optimizers"]["s"]["final_accuracy_per_task"][0]["mean"] == pytest.approx(0.4)


def test_summarize_runs_lists_diverged_seeds_and_averages_the_finished_ones():
    from optbias.continual.summary import ablation_table

    def run(seed, last, status="ok"):
        r = {"benchmark": "b", "optimizer": "v", "seed": seed, "tasks": ["t0", "t1"], "status": status}
        if status == "ok":
            r.update(R=[[1.0, 0.0], last], average_accuracy=sum(last) / 2, average_forgetting=1 - last[0],
                     bwt=last[0] - 1, mean_accuracy_old_tasks=last[0])
        else:
            r.update(R=[[1.0, 0.0]])  # stopped during the second task
        return r
    out = summarize_runs([run(0, [0.2, 1.0]), run(1, [], "diverged"), run(2, [0.4, 1.0])], ["v"])
    entry = out["optimizers"]["v"]
    assert entry["seeds"] == [0, 2] and entry["diverged_seeds"] == [1]
    assert entry["average_forgetting"]["per_seed"] == pytest.approx([0.8, 0.6])
    assert entry["final_accuracy_per_task"][0]["mean"] == pytest.approx(0.3)
    table = ablation_table({"b": out})
    assert "(b: 1 of 3 seeds diverged)" in table
    assert "| b: avg forgetting | b: avg accuracy | b: learning accuracy |" in table
    assert "1.000 [1.000, 1.000] |" in table  # both finished seeds learned each task they saw


def test_only_ablation_variants_record_divergence():
    from optbias.config import train_overrides

    config = {"train": {"threads": 1}, "ablation": {"base": "s", "variants": {"v": {"train": {"reset_optimizer": True}}}}}
    assert train_overrides(config, "s") == {"threads": 1}  # headline runs still fail loudly on NaN
    assert train_overrides(config, "v") == {"threads": 1, "on_divergence": "record", "reset_optimizer": True}


def test_seed_stat_is_the_one_shape_of_a_statistic_over_seeds():
    from optbias.stats import seed_stat

    assert seed_stat([0.5]) == {"mean": 0.5, "ci95": [0.5, 0.5], "per_seed": [0.5]}
    out = seed_stat((0.2, 0.4, 0.6), seeds=(3, 1, 2))
    assert out["mean"] == pytest.approx(0.4) and out["per_seed"] == [0.2, 0.4, 0.6] and out["seeds"] == [3, 1, 2]
    assert 0.2 <= out["ci95"][0] < 0.4 < out["ci95"][1] <= 0.6
    assert out["ci95"] == list(bootstrap_ci([0.2, 0.4, 0.6])[1:])
