"""optbias.stats: the Student-t intervals on known answers and their coverage by simulation, the
Bonferroni level, seed_stat's shape; and the continual summaries that use them."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from optbias.continual.summary import summarize_runs
from optbias.stats import bonferroni_level, paired_interval, seed_stat, t_interval, t_quantile, welch_interval

# t_{0.975, 2} as older scipy releases computed it (tables: 4.303). The closed form for 2 degrees of
# freedom, q sqrt(2 / (1 - q^2)) with q = 2 x 0.975 - 1 = 0.95, gives 4.3026527297494...; the two
# differ by 1.6e-10, far inside the 1e-9 the known answers below are checked to.
T975_DF2 = 4.302652729911275
T975_DF1 = 12.706204736174705  # t_{0.975, 1} = tan(0.475 pi) (Cauchy)
T975_DF4 = 2.7764451051977987  # t_{0.975, 4} (tables: 2.776)


# --- known answers ----------------------------------------------------------------------------------

def test_t_quantiles_are_the_closed_forms_and_the_tabled_ones():
    assert t_quantile(0.95, 2) == pytest.approx(0.95 * math.sqrt(2 / (1 - 0.95 ** 2)), abs=1e-12)
    assert t_quantile(0.95, 2) == pytest.approx(T975_DF2, abs=1e-9)
    assert t_quantile(0.95, 1) == pytest.approx(math.tan(0.475 * math.pi), abs=1e-9)
    assert t_quantile(0.95, 4) == pytest.approx(T975_DF4, abs=1e-9)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0.95, 0)


def test_t_interval_of_1_2_3_by_hand():
    # mean 2, s = 1 (deviations -1, 0, 1: sum of squares 2, over n - 1 = 2), s / sqrt(3)
    mean, low, high = t_interval([1, 2, 3])
    assert mean == 2.0
    assert low == pytest.approx(2 - T975_DF2 / math.sqrt(3), abs=1e-9)
    assert high == pytest.approx(2 + T975_DF2 / math.sqrt(3), abs=1e-9)
    # Two seeds: 0.0 and 0.05 -> mean 0.025, s / sqrt(2) = 0.025, half width 12.706 x 0.025.
    assert t_interval([0.0, 0.05]) == pytest.approx((0.025, 0.025 - T975_DF1 * 0.025, 0.025 + T975_DF1 * 0.025))
    # At n = 3 the interval is wider than [min, max], which a percentile bootstrap returns there.
    assert low < 1.0 and high > 3.0


def test_t_interval_at_another_level_and_of_constant_values():
    mean, low, high = t_interval([1, 2, 3], level=0.9)  # t_{0.95, 2} = 2.919985580
    assert (high - mean) == pytest.approx(2.919985580355516 / math.sqrt(3), abs=1e-9)
    assert t_interval([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7, 0.7))  # zero spread: [mean, mean]


def test_t_interval_needs_two_finite_values_and_a_level():
    with pytest.raises(ValueError, match="at least 2 values .* got 1"):
        t_interval([0.4])
    with pytest.raises(ValueError, match="at least 2 values"):
        t_interval([])
    with pytest.raises(ValueError, match="finite"):
        t_interval([0.1, float("nan")])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        t_interval([0.1, 0.2], level=95)


def test_welch_interval_by_hand():
    # a = [1, 2, 3]: mean 2, s_a^2 = 1, s_a^2 / 3 = 1/3; b = [2, 4]: mean 3, s_b^2 = 2, s_b^2 / 2 = 1.
    # v = 1/3 + 1 = 4/3; Welch-Satterthwaite df = v^2 / ((1/3)^2 / 2 + 1^2 / 1) = (16/9) / (19/18) = 32/19.
    # t_{0.975, 32/19} = 5.17623162854652 (scipy; between t_{0.975,1} = 12.7 and t_{0.975,2} = 4.30).
    diff, low, high = welch_interval([1, 2, 3], [2, 4])
    half = 5.1762316285465175 * math.sqrt(4 / 3)
    assert diff == -1.0 and low == pytest.approx(-1 - half, abs=1e-9) and high == pytest.approx(-1 + half, abs=1e-9)
    assert scipy_stats.t.ppf(0.975, 32 / 19) == pytest.approx(5.1762316285465175, abs=1e-12)
    # One side constant: df is the other side's n - 1 (here 2), and the interval is its t interval.
    diff, low, high = welch_interval([0.1, 0.1], [0.5, 0.4, 0.6])
    assert diff == pytest.approx(-0.4) and high - diff == pytest.approx(T975_DF2 * 0.1 / math.sqrt(3))
    assert welch_interval([1.0, 1.0], [0.25, 0.25]) == (0.75, 0.75, 0.75)  # both constant
    with pytest.raises(ValueError, match=r"welch_interval \(b\) needs at least 2 values"):
        welch_interval([0.0, 1.0], [0.0])


def test_paired_interval_is_the_t_interval_of_the_differences():
    a, b = [0.5, 0.7, 0.9], [0.1, 0.2, 0.3]
    assert paired_interval(a, b) == pytest.approx(t_interval([0.4, 0.5, 0.6]))
    with pytest.raises(ValueError, match="one value of each side per seed"):
        paired_interval([1.0, 2.0], [1.0])


def test_bonferroni_level():
    assert bonferroni_level(0.95, 1) == 0.95
    assert bonferroni_level(0.95, 3) == pytest.approx(1 - 0.05 / 3)
    assert bonferroni_level(0.95, 10) == pytest.approx(0.995)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            bonferroni_level(0.95, bad)


def test_seed_stat_is_the_one_shape_of_a_statistic_over_seeds():
    # One seed: no interval can be estimated, so none is written (not a zero-width one).
    assert seed_stat([0.5]) == {"mean": 0.5, "ci95": None, "per_seed": [0.5]}
    out = seed_stat((0.2, 0.4, 0.6), seeds=(3, 1, 2))
    assert out["mean"] == pytest.approx(0.4) and out["per_seed"] == [0.2, 0.4, 0.6] and out["seeds"] == [3, 1, 2]
    assert out["ci95"] == pytest.approx([0.4 - T975_DF2 * 0.2 / math.sqrt(3), 0.4 + T975_DF2 * 0.2 / math.sqrt(3)])
    assert out["ci95"] == list(t_interval([0.2, 0.4, 0.6])[1:])
    assert seed_stat([0.7, 0.7])["ci95"] == pytest.approx([0.7, 0.7])
    nan = seed_stat([0.1, float("nan")])
    assert nan["ci95"] is None and math.isnan(nan["mean"])
    with pytest.raises(ValueError, match="at least one value"):
        seed_stat([])
    with pytest.raises(ValueError, match="2 values but 1 seeds"):
        seed_stat([0.1, 0.2], seeds=[0])


# --- coverage by simulation (vectorised; fixed seed) -------------------------------------------------

DRAWS = 4000


def _t_covers(x: np.ndarray, true_mean: float, level: float = 0.95) -> float:
    """Fraction of rows of ``x`` (draws x n) whose t interval contains ``true_mean``; the same
    formula as t_interval, vectorised (checked against it on the first rows)."""
    n = x.shape[1]
    mean, half = x.mean(axis=1), scipy_stats.t.ppf(0.5 + level / 2, n - 1) * x.std(axis=1, ddof=1) / np.sqrt(n)
    for row, m, h in zip(x[:5], mean[:5], half[:5]):
        assert t_interval(row.tolist(), level) == pytest.approx((m, m - h, m + h))
    return float(np.mean((mean - half < true_mean) & (true_mean < mean + half)))


@pytest.mark.parametrize("n", [3, 5])
def test_coverage_on_normal_data_is_the_nominal_one(n):
    """The t interval's coverage on normal data is exactly 95% in theory; 4,000 draws estimate it
    within about +-0.7% (one standard error 0.34%). Measured: 0.948 at n = 3, 0.944 at n = 5 (the
    percentile bootstrap it replaces: about 0.76 and 0.83)."""
    rng = np.random.default_rng(2024)
    x = rng.normal(0.3, 0.1, size=(DRAWS, n))
    assert _t_covers(x, 0.3) >= 0.93
    # [min, max], the percentile bootstrap's interval at n = 3, covers 1 - 2 / 2^n of the time.
    if n == 3:
        assert float(np.mean((x.min(axis=1) < 0.3) & (0.3 < x.max(axis=1)))) == pytest.approx(0.75, abs=0.025)


@pytest.mark.parametrize("n", [3, 5])
def test_coverage_of_paired_differences(n):
    """Two optimizers share each seed's effect (same initialization, same batches): a large
    seed-to-seed effect u cancels in a - b, and the t interval of the differences covers the true
    difference (0.5) at the nominal rate."""
    rng = np.random.default_rng(7)
    u = rng.normal(0.0, 2.0, size=(DRAWS, n))
    a = 1.0 + u + rng.normal(0.0, 0.1, size=(DRAWS, n))
    b = 0.5 + u + rng.normal(0.0, 0.1, size=(DRAWS, n))
    assert _t_covers(a - b, 0.5) >= 0.93


def test_coverage_of_welch_on_normal_data():
    """Welch's interval is approximate; with three or more seeds a side its coverage on normal data
    is at or above the nominal one (measured 0.97 and 0.96 here; with two seeds on the noisier side
    it falls to about 0.89, which is why the audit pairs by seed whenever it can)."""
    rng = np.random.default_rng(11)
    for n1, n2, s1, s2 in ((3, 3, 1.0, 1.0), (3, 5, 1.0, 3.0)):
        a, b = rng.normal(0, s1, size=(DRAWS, n1)), rng.normal(0, s2, size=(DRAWS, n2))
        va, vb = a.var(axis=1, ddof=1) / n1, b.var(axis=1, ddof=1) / n2
        df = (va + vb) ** 2 / (va ** 2 / (n1 - 1) + vb ** 2 / (n2 - 1))
        half = scipy_stats.t.ppf(0.975, df) * np.sqrt(va + vb)
        d = a.mean(axis=1) - b.mean(axis=1)
        assert welch_interval(a[0], b[0]) == pytest.approx((d[0], d[0] - half[0], d[0] + half[0]))
        assert float(np.mean(np.abs(d) < half)) >= 0.93


def test_coverage_on_skewed_data_is_reported_not_promised():
    """On exponential data (skewed) the t interval is not exact: measured 0.885 at n = 3 and 0.88
    at n = 5 here. No theory promises 95% there; it is still well above [min, max] (the percentile
    bootstrap at n = 3, 0.75)."""
    rng = np.random.default_rng(5)
    x = rng.exponential(1.0, size=(DRAWS, 3))
    coverage = _t_covers(x, 1.0)
    assert 0.8 < coverage < 0.95
    assert coverage > float(np.mean((x.min(axis=1) < 1.0) & (1.0 < x.max(axis=1))))


# --- the continual summaries ------------------------------------------------------------------------

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
    first = out["optimizers"]["s"]["final_accuracy_per_task"][0]
    assert first["mean"] == pytest.approx(0.4)
    # 0.5 and 0.3: mean 0.4, s / sqrt(2) = 0.1, half width t_{0.975, 1} x 0.1
    assert first["ci95"] == pytest.approx([0.4 - T975_DF1 * 0.1, 0.4 + T975_DF1 * 0.1])


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
    # One finished seed: the mean alone, no interval.
    one = summarize_runs([run(0, [0.2, 1.0]), run(1, [], "diverged")], ["v"])
    assert one["optimizers"]["v"]["average_forgetting"]["ci95"] is None
    assert one["optimizers"]["v"]["final_accuracy_per_task"][0]["ci95"] is None
    assert "0.800 (n = 1)" in ablation_table({"b": one})


def test_only_ablation_variants_record_divergence():
    from optbias.config import train_overrides

    config = {"train": {"threads": 1}, "ablation": {"base": "s", "variants": {"v": {"train": {"reset_optimizer": True}}}}}
    assert train_overrides(config, "s") == {"threads": 1}  # headline runs still fail loudly on NaN
    assert train_overrides(config, "v") == {"threads": 1, "on_divergence": "record", "reset_optimizer": True}
