"""The cost benchmark's FLOP counts on hand-computed cases, and one tiny run of the report."""

import pytest

from optbias.perf import flops
from optbias.perf import step as perf


def test_flop_counts_match_hand_computation():
    # 784 -> 10, one weight W (10 x 784): L = G G^T (10x10), R = G^T G (784x784).
    m, n = 10, 784
    stats = 2 * (m * m * n + n * n * m)
    precond = 2 * (m * m * n + m * n * n)
    assert flops.shampoo({}, [784, 10], 64, roots=False) == stats + precond
    # With gradient factors at batch b: the cheaper of the two counts (2 FLOPs per multiply-add).
    b = 4  # 784 x 10 is cheaper factored at b = 4: 2b^2(m+n) + 2b(m^2+n^2) + mnb + mn + 2b(m+n) multiply-adds
    factored = 2 * b * b * (m + n) + 2 * b * (m * m + n * n) + m * n * b + m * n + 2 * b * (m + n)
    assert factored < (stats + precond) / 2
    assert flops.shampoo({"gradient_factors": True}, [784, 10], b, roots=False) == 2 * factored
    assert flops.shampoo({"gradient_factors": True}, [784, 10], 512, roots=False) == stats + precond  # no saving
    # one-sided (L^-1/2 G): the left statistic and product only; a side over max_precond_dim is diagonal
    assert flops.shampoo({"exponent": "half_left"}, [784, 10], 64, roots=False) == 2 * 2 * m * m * n
    assert flops.shampoo({"max_precond_dim": 100}, [784, 10], 64, roots=False) == 2 * 2 * m * m * n
    assert flops.model([784, 10], batch=64) == 4 * 64 * m * n  # one layer: no input gradient
    assert flops.model([784, 5, 10], batch=2) == 6 * 2 * (784 * 5 + 5 * 10) - 2 * 2 * 784 * 5


@pytest.mark.parametrize("hidden, batch", [([16], 8), ([32, 24], 5)])
def test_the_model_flops_are_what_torch_counts_on_a_real_step(hidden, batch):
    """An independent count: torch's FlopCounterMode over one forward and backward pass of the MLP."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from optbias.models import MLP

    model = MLP(784, hidden, 10)
    x, y = torch.rand(batch, 784), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    assert flops.model([784, *hidden, 10], batch) == counter.get_total_flops()


def test_root_flop_lower_bound_is_hand_computed():
    # 784 -> 10: factors 784 x 784 and 10 x 10; (4/3 + 2) n^3 each, amortized over 10 (then 5) steps.
    roots = flops.shampoo({}, [784, 10], 64) - flops.shampoo({}, [784, 10], 64, roots=False)
    assert roots == pytest.approx((10 / 3) * (784**3 + 10**3) / 10)
    assert flops.shampoo({"update_freq": 5}, [784, 10], 64) - flops.shampoo({}, [784, 10], 64, roots=False) == \
        pytest.approx(2 * roots)


def test_owm_and_memory_shampoo_flops_are_hand_computed():
    # one 3 -> 2 layer: W (2 x 3); OWM with the bias folded works on n' = 4 inputs
    assert flops.owm({}, [3, 2], 7) == 4 * 4**2 + 2 * 2 * 4**2  # P update from x (4 n'^2) + G P (2 m n'^2)
    assert flops.owm({"fold_bias": False}, [3, 2], 7) == 4 * 3**2 + 2 * 2 * 3**2
    memory = 2 * 3**2 + 2 * 2 * 3**2 + (10 / 3) * 3**3 / 10  # S update, direction @ root, root every 10 steps
    assert flops.memory_shampoo({"memory_power": 1.0, "shampoo_factors": False}, [3, 2], 7) == pytest.approx(memory)
    assert flops.memory_shampoo({"memory_power": 0.5}, [3, 2], 7) == pytest.approx(
        memory + flops.shampoo({}, [3, 2], 7))
    assert flops.memory_shampoo({"memory_power": 0}, [3, 2], 7) == flops.shampoo({}, [3, 2], 7)  # Shampoo exactly


def test_step_flops_count_elementwise_types_as_zero_and_unknown_ones_as_none():
    w = [784, 16, 10]
    assert flops.step({"type": "sgd", "lr": 0.1}, w, 8) == 0.0
    assert flops.step({"type": "adamw", "lr": 1e-3, "regularizer": "ewc", "regularizer_strength": 1}, w, 8) == 0.0
    assert flops.step({"type": "muon", "lr": 0.01}, w, 8) is None  # not estimated
    assert flops.step({"type": "torch.optim.NAdam", "lr": 1e-3}, w, 8) is None
    assert flops.step({"type": "owm", "lr": 1.0, "alpha": 0.01}, w, 8) == flops.owm({"alpha": 0.01}, w, 8)
    entry = {"type": "shampoo", "lr": 0.03, "update_freq": 20}
    assert flops.step(entry, w, 8) == flops.shampoo({"lr": 0.03, "update_freq": 20}, w, 8)


def write_run(root, rel, spec_extra, steps, wall, eval_s=None, threads=1):
    """A run's metrics.json with what the bound reads: 2 tasks of 2 epochs at batch 8."""
    import json

    spec = {"model": {"hidden": [16]}, "benchmark_cfg": {"batch_size": 8, "epochs_per_task": 2},
            "optimizer_cfg": {"type": "sgd", "lr": 0.1}, "train": {"threads": threads}, **spec_extra}
    timing = {"wall_time_s": wall, **({} if eval_s is None else {"eval_time_s": eval_s})}
    path = root / "data" / rel / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"spec": spec, "steps": steps, "tasks": ["0/1", "2/3"], "device": "cpu",
                                "timing": timing}))
    return path


def test_the_whole_run_bound_and_its_breakdown_on_hand_made_runs(tmp_path):
    from optbias.perf import bound

    w = [784, 16, 10]
    model = flops.model(w, 8)
    write_run(tmp_path, "runs/permuted/sgd/seed0", {}, steps=100, wall=3.0, eval_s=0.5)
    write_run(tmp_path, "sweep/permuted/owm/seed0", {"optimizer_cfg": {"type": "owm", "lr": 1.0}}, steps=50, wall=2.0)
    write_run(tmp_path, "runs/permuted/ewc/seed0", {"optimizer_cfg": {"type": "sgd", "lr": 0.1, "regularizer": "ewc",
                                                                       "regularizer_strength": 10}}, steps=40, wall=1.0,
              eval_s=0.25)
    (tmp_path / "data/summary").mkdir()
    (tmp_path / "data/summary/metrics.json").write_text("{}")  # not a run: skipped
    peak = 1e9
    runs = bound.runs_bound(tmp_path, peak)
    # 2 tasks x 2 epochs: the last batch of each of the 4 epochs may hold one row, so rows >= 8 steps - 4 x 7
    per_row, owm, owm_one_row = model / 8, flops.owm({}, w, 8), flops.owm({}, w, 1)
    rows = {100: 800 - 28, 50: 400 - 28, 40: 320 - 28}
    expected_flops = (rows[100] * per_row + rows[50] * per_row + 46 * owm + 4 * owm_one_row
                      + rows[40] * per_row + rows[40] / 2 * per_row)  # EWC: one pass over each task's split
    assert runs["runs"] == 3 and runs["bound_s"] == pytest.approx(expected_flops / peak)
    assert runs["threads"] == [1] and runs["devices"] == ["cpu"]
    assert runs["train_s"] == pytest.approx(2.5 + 2.0 + 0.75) and runs["eval_s"] == 0.75
    assert runs["eval_recorded"] == 2 and runs["not_estimated"] == []
    assert runs["by_type"]["owm"]["ratio"] == pytest.approx(2.0 / ((rows[50] * per_row + 46 * owm + 4 * owm_one_row) / peak))
    times = {"job_s": 20.0, "stages": {"train": {"job_s": 8.0}, "sweep": {"job_s": 4.0}, "probes": {"job_s": 8.0}}}
    out = bound.breakdown(runs, times, wall_s=15.0, cores=2)
    assert sum(out["parts"].values()) == pytest.approx(2 * 15.0)  # every core-second, once
    assert out["bound_wall_s"] == pytest.approx(runs["bound_s"] / 2)
    assert out["ratio"] == pytest.approx(15.0 / out["bound_wall_s"])
    parts = list(out["parts"].values())
    assert parts[3] == pytest.approx(12.0 - 6.0) and parts[4] == pytest.approx(8.0) and parts[5] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="no training run with a step count"):
        bound.breakdown(bound.runs_bound(tmp_path / "empty", peak), times, 15.0, 2)

    # Only the runs written during the measured invocation count; a run on 4 threads is refused.
    import os

    old = tmp_path / "data/runs/permuted/sgd/seed0/metrics.json"
    now = old.stat().st_mtime
    os.utime(old, (now - 7200, now - 7200))
    assert bound.runs_bound(tmp_path, peak, (now - 3600, now))["runs"] == 2
    write_run(tmp_path, "runs/permuted/sgd/seed1", {}, steps=100, wall=3.0, threads=4)
    with pytest.raises(ValueError, match=r"threads \[1, 4\] .* holds for train.threads 1 on the CPU only"):
        bound.breakdown(bound.runs_bound(tmp_path, peak), times, 15.0, 2)


def test_report_prints_ratios_from_one_run():
    out = perf.report(hidden=[8], batch=4, steps=2, threads=1, peak_n=128)
    assert out["shampoo_over_adamw"] == pytest.approx(out["shampoo_step_ms"] / out["adamw_step_ms"])
    assert 0 <= out["root_fraction"] <= 1
    assert out["flop_lower_bound_ratio"] > 1 and out["matmul_peak_gflops"] > 0


# ---- optbias bench (src/optbias/perf/bench.py)

def test_stage_times_and_wall_time_from_snakemake_files(tmp_path):
    from optbias.perf import bench

    header = "s\th:m:s\tmax_rss\n"
    for rel, seconds in {"train/permuted/shampoo.tsv": 300.0, "train/permuted/sgd.tsv": 100.0,
                         "sweep/permuted/shampoo/lr0.1.tsv": 50.5, "probes/permuted.tsv": 9.5}.items():
        (tmp_path / "benchmarks" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "benchmarks" / rel).write_text(f"{header}{seconds}\t0:00:00\t1.0\n")
    out = bench.stage_times(tmp_path)
    assert out["job_s"] == 460.0 and out["shampoo_s"] == 350.5 and out["jobs"] == 4
    assert list(out["stages"]) == ["train", "sweep", "probes"]  # longest first
    assert out["stages"]["train"] == {"job_s": 400.0, "shampoo_s": 300.0, "jobs": 2}

    logs = tmp_path / ".snakemake" / "log"
    logs.mkdir(parents=True)
    (logs / "2026-01-01T000000.snakemake.log").write_text(  # complete, 3 jobs, 1 h 2 min 5 s
        "[Thu Jan  1 09:00:00 2026]\nrule a:\n[Thu Jan  1 10:02:05 2026]\n3 of 3 steps (100%) done\n")
    (logs / "2026-01-02T000000.snakemake.log").write_text(  # interrupted: not a complete run
        "[Fri Jan  2 09:00:00 2026]\n1 of 3 steps (33%) done\n[Fri Jan  2 09:30:00 2026]\n")
    wall = bench.snakemake_wall_time(tmp_path)
    assert {k: wall[k] for k in ("log", "jobs", "wall_s")} == {
        "log": ".snakemake/log/2026-01-01T000000.snakemake.log", "jobs": 3, "wall_s": 3725.0}
    assert wall["end"] - wall["start"] == 3725.0
    assert bench.snakemake_wall_time(tmp_path / "nothing") is None

    # Only benchmark files written during the chosen run count: one left by an older run does not.
    import os

    now = (tmp_path / "benchmarks/probes/permuted.tsv").stat().st_mtime
    os.utime(tmp_path / "benchmarks/probes/permuted.tsv", (now - 7200, now - 7200))
    recent = bench.stage_times(tmp_path, (now - 3600, now))
    assert recent["job_s"] == 450.5 and "probes" not in recent["stages"] and recent["jobs"] == 3


def test_bench_config_merges_onto_the_default_and_checks_its_arguments(tmp_path):
    from conftest import REPO
    from optbias.perf import bench

    merged = bench.merged_config(REPO / "config" / "fashion.yaml", REPO / "config" / "config.yaml")
    assert merged["dataset"] == "fashion-mnist" and merged["optimizers"]["shampoo"]["root_dtype"] == "float32"
    assert merged["benchmarks"]["permuted"]["n_tasks"] == 10  # from the default, under fashion's own epochs
    assert merged["benchmarks"]["permuted"]["epochs_per_task"] == 4  # fashion.yaml's own (its budget rule's choice)
    assert merged["optimizers"]["adamw"] == {"type": "adamw", "lr": 3.0e-4, "weight_decay": 1.0e-2}  # lr merged alone
    with pytest.raises(ValueError, match="0 < LOW < HIGH"):
        bench.run(REPO / "config" / "config.yaml", tmp_path, epochs=(3, 3))
    with pytest.raises(ValueError, match="give a .md path"):
        bench.main(REPO / "config" / "config.yaml", tmp_path, tmp_path / "perf.json", 3, (1, 2), 128)


def test_bench_prints_all_eight_figures(tmp_path):
    """A tiny run of the whole benchmark (a narrow MLP, a few steps): every figure is there, each
    ratio is the quotient of the numbers printed next to it, and the output is written atomically."""
    import json

    import yaml

    from conftest import REPO
    from optbias.perf import bench

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["model"]["hidden"] = [16]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "docs" / "performance.md"
    out.parent.mkdir()
    result = bench.main(tmp_path / "config.yaml", tmp_path, out, steps=3, epochs=(1, 4), peak_n=128)
    text = out.read_text()
    import importlib.util

    absent = importlib.util.find_spec("avalanche") is None  # a dependency (requirements.lock); absent in an environment of one's own
    for figure in ("pytorch_optimizer.Shampoo", "FLOP lower bound", "plain torch loop",
                   "avalanche-lib not installed" if absent else "Avalanche `Naive` |",
                   "SGD step / matmul peak", "`make reproduce`", "Fixed cost of one training job"):
        assert figure in text, figure
    sh, tp = result["shampoo"], result["throughput"]
    assert sh["configured"] == "float32 roots, gradient factors" and sh["gradient_factors"]  # config.yaml's choice
    assert sh["ratio_to_peer"] == pytest.approx(sh["step_ms"][sh["configured"]] / sh["peer_step_ms"])
    assert set(sh["step_ms"]) == {"float64 roots", "float32 roots", "float32 roots, gradient factors"}
    for opt in ("sgd", "adamw"):
        rates = tp[opt]["samples_per_s"]
        assert tp[opt]["ratio_to_plain"] == pytest.approx(rates["optbias"] / rates["plain torch loop"])
        assert rates["optbias"] > 0 and rates["plain torch loop"] > 0
    assert tp["samples"][4] == 4 * tp["samples"][1] > 0
    # The markdown shows the numbers of the JSON next to it, not other ones.
    saved = json.loads(out.with_suffix(".json").read_text())
    assert f"| {saved['shampoo']['ratio_to_peer']:.2f} | <= 0.5 |" in text
    assert f"| {saved['throughput']['sgd']['ratio_to_plain']:.2f} | >= 0.9 |" in text
    assert f"{saved['throughput']['sgd']['samples_per_s']['optbias']:,.0f}" in text
    fixed = tp["fixed_cost_s"]
    assert fixed["python and imports"] > 0 and fixed["per job"] == pytest.approx(
        fixed["python and imports"] + fixed[bench.DYNAMO_ROW] + fixed["warm-up, data loading, evaluation"])
    assert f"| {bench.DYNAMO_ROW} | {fixed[bench.DYNAMO_ROW]:.2f} |" in text
    assert 0 < tp["sgd_step"]["ratio_to_peak"] < 5
    assert "no complete run here" in text and result["reproduce"]["wall"] is None and result["bound"] is None
    assert result["core_scaling"] == pytest.approx(
        result["matmul_peak_all_cores_gflops"] / (result["matmul_peak_gflops"] * result["machine"]["cpu_count"]))
    assert f"{result['core_scaling']:.2f} of {result['machine']['cpu_count']} x one core's" in text
    # 8: the configured optimizers with a FLOP count, each step against its bound, as a quotient
    sb = result["step_bounds"]
    assert set(sb) == {"shampoo", "owm", "memory-shampoo"}  # ewc/si are SGD with a penalty: no count of their own
    for name, f in sb.items():
        assert f["ratio_to_lower_bound"] == pytest.approx(f["step_ms"] / f["lower_bound_ms"])
        assert f"| {name} | {f['type']} | {f['step_ms']:.1f} | {f['lower_bound_ms']:.1f} | " in text
    assert saved["shampoo"]["update_freq"] == 10 and "--epochs 1 4" in text  # the command that made it
    # 6: every optimizer of the config the batched mode trains, one after another against batched, as a quotient
    bt = result["batched"]
    assert set(bt["optimizers"]) == {"sgd", "adamw", "adam-1e-3", "adam-1e-4", "adagrad", "shampoo",
                                     "shampoo (dense gradients)"}  # config.yaml's Shampoo has gradient factors on
    assert bt["seeds"] == 5 and bt["optimizers"]["shampoo (dense gradients)"]["type"] == "shampoo"
    for name, b in bt["optimizers"].items():
        assert b["one_by_one_s"] > 0 and b["batched_s"] > 0
        assert b["speedup"] == pytest.approx(b["one_by_one_s"] / b["batched_s"])
        assert f"| {name} | {b['type']} | {b['one_by_one_s']:.2f} | {b['batched_s']:.2f} | {b['speedup']:.2f} |" in text
        assert f"| 6 | {name}: job time of its seeds one after another / batched (speed-up) | {b['speedup']:.2f} |" in text


def test_a_built_in_optimizer_step_imports_torch_dynamo():
    """Why the bench times torch._dynamo's import as its own part of a job's fixed cost: importing
    optbias's training code does not import it, the first step of a torch.optim optimizer does."""
    import subprocess
    import sys

    code = ("import sys, torch, optbias.continual.train\n"
            "before = 'torch._dynamo' in sys.modules\n"
            "p = torch.nn.Parameter(torch.zeros(2)); p.grad = torch.ones(2)\n"
            "torch.optim.SGD([p], lr=0.1).step()\n"
            "print(before, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"], out


def test_a_config_variant_outside_the_standard_list_is_timed_and_is_figure_1():
    """float64 roots with gradient factors is not one of the three standard rows: it gets its own."""
    from conftest import REPO
    from optbias.perf import bench

    cfg = bench.merged_config(REPO / "config" / "config.yaml")
    cfg["model"]["hidden"] = [8]
    cfg["optimizers"]["shampoo"] = {**cfg["optimizers"]["shampoo"], "root_dtype": "float64", "gradient_factors": True}
    sh = bench.shampoo_figures(cfg, steps=2, peak=1e11)
    assert sh["configured"] == "float64 roots, gradient factors" and sh["gradient_factors"]
    assert sh["ratio_to_peer"] == pytest.approx(sh["step_ms"][sh["configured"]] / sh["peer_step_ms"])


def test_runs_sums_every_invocation_of_a_resumed_run(tmp_path, capsys):
    """`optbias runs` on a run resumed over three invocations (known times): every invocation listed,
    the killed one counted to its last logged event, the sum, and the stage table."""
    from optbias import cli
    from optbias.perf import runlog

    logs = tmp_path / ".snakemake" / "log"
    logs.mkdir(parents=True)
    (logs / "2026-01-01T090000.snakemake.log").write_text(  # a targeted first stage: complete, 20 min
        "Building DAG of jobs...\n[Thu Jan  1 09:00:00 2026]\nJob 1: fetch\n[Thu Jan  1 09:20:00 2026]\n"
        "2 of 2 steps (100%) done\n")
    (logs / "2026-01-01T100000.snakemake.log").write_text(  # killed after 1 h 30 min of logged events
        "[Thu Jan  1 10:00:00 2026]\n[Thu Jan  1 11:00:00 2026]\n3 of 10 steps (30%) done\n[Thu Jan  1 11:30:00 2026]\n")
    (logs / "2026-01-01T120000.snakemake.log").write_text("Building DAG of jobs...\n")  # stopped before its first job (--unlock): left out
    (logs / "2026-01-02T090000.snakemake.log").write_text(  # resumed: the 7 jobs left, 45 min
        "[Fri Jan  2 09:00:00 2026]\n[Fri Jan  2 09:45:00 2026]\n7 of 7 steps (100%) done\n")
    runs = runlog.invocations(tmp_path)
    assert [r["wall_s"] for r in runs] == [1200.0, 5400.0, 2700.0]
    assert [(r["done"], r["total"], r["complete"]) for r in runs] == [(2, 2, True), (3, 10, False), (7, 7, True)]
    # Figure 5 of `optbias bench` takes the complete run with the most jobs (here the resumed tail).
    assert runlog.snakemake_wall_time(tmp_path)["wall_s"] == 2700.0
    (tmp_path / "benchmarks/train/permuted").mkdir(parents=True)
    (tmp_path / "benchmarks/train/permuted/shampoo.tsv").write_text("s\th:m:s\n120.5\t0:02:00\n")
    out = tmp_path / "runs.md"
    assert cli.main(["runs", "--workdir", str(tmp_path), "--output", str(out)]) == 0
    text = out.read_text()
    assert capsys.readouterr().out.strip() == text.strip()  # printed, and written atomically
    assert "3 invocations, 2.58 h of wall time in all" in text  # (1200 + 5400 + 2700) s = 2.583 h
    assert "| 3 of 10 |" in text and "| 7 of 7 (complete) |" in text and "| 90.0 | 3 of 10 |" in text
    assert "| train | 1 | 120 | 120 |" in text  # 120.5 s: rounded to the second
    assert "nothing has run here yet" in runlog.runs_markdown(tmp_path / "empty")

    # Snakemake prints "0.1%" and "99.5%" rather than round to 0% or 100%; a clock set back an hour
    # (daylight saving) is no negative time.
    other = tmp_path / "other"
    (other / ".snakemake/log").mkdir(parents=True)
    (other / ".snakemake/log/a.snakemake.log").write_text(
        "[Thu Jan  1 01:50:00 2026]\n1 of 1000 steps (0.1%) done\n[Thu Jan  1 01:10:00 2026]\n"
        "[Thu Jan  1 01:40:00 2026]\n995 of 1000 steps (99.5%) done\n")
    (run,) = runlog.invocations(other)
    assert (run["done"], run["total"], run["complete"], run["wall_s"]) == (995, 1000, False, 1800.0)
