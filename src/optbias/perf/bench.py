"""``optbias bench``: where the pipeline's time goes, as ratios measured side by side in one run.

Never a timed unit test: every figure is a ratio of two things timed in this process (or, for the
fixed cost of a job, in a fresh subprocess), on one thread, so that the machine's speed cancels.
The figures, written to ``docs/performance.md`` with the machine:

1. our Shampoo step (the config's variant) / ``pytorch_optimizer.Shampoo``'s step: same MLP, batch
   and root frequency; also each variant's step and share in roots: float64 roots, float32 roots,
   and float32 roots with the statistics and direction from the gradient factors (``gradient_factors``);
2. our Shampoo step / its FLOP lower bound at the measured float32 matmul peak;
3. SGD and AdamW training throughput of ``train_run`` (samples/s, marginal: the difference of two
   budgets, so fixed costs cancel) / a plain torch loop over the same tensors, and / Avalanche's
   ``Naive`` strategy when ``avalanche-lib`` is installed (a dependency: requirements.lock); and,
   separately, the fixed cost of one training job (Python + torch import, warm-up, data loading,
   evaluation), timed in a fresh process;
4. achieved GFLOP/s of an SGD training step / the matmul peak;
5. the complete Snakemake run with the most jobs in the working directory (``make reproduce``): its
   wall time from Snakemake's log and the job time per stage (and Shampoo's share) from the
   ``benchmarks/`` files written during that run; also the floor the jobs other than Shampoo put
   under the wall time (their job time / the cores).
6. the batched-seed mode (``train.batch_seeds``, ``optbias.continual.batched``): per optimizer of
   the config that it trains (element-wise ones and Shampoo), the wall time of a job training every seed one after another / the same
   job with the seeds batched in one stacked model (above 1: batching is faster);
7. the run of figure 5 / its compute bound (``optbias.perf.bound``: every training run's steps x
   FLOPs per step at the matmul peak, over the cores), with the gap split into the training above
   the bound, evaluation, the jobs' fixed cost, other jobs and idle cores;
8. each configured optimizer whose type counts its FLOPs (Shampoo, OWM, Memory Shampoo): its step /
   its FLOP lower bound at the matmul peak.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml

from .. import data, fileio
from ..continual import benchmarks
from ..continual.train import train_run
from ..engine import machine, make_deterministic
from ..models import init_model
from ..optim import registry
from . import bound, flops
from .step import matmul_peak, step_time
from .runlog import snakemake_wall_time, stage_table, stage_times  # figure 5 (re-exported: bench.stage_times)

THROUGHPUT_BENCHMARK = "class_incremental"
DYNAMO_ROW = "torch._dynamo import, at torch.optim's first step"


# ---- 1, 2: Shampoo against its peer and against its FLOP lower bound


def shampoo_figures(cfg: dict, steps: int, peak: float) -> dict[str, Any]:
    """Figures 1 and 2 on the config's model and Shampoo entry, batch of the class-incremental benchmark.

    All Shampoo variants step at lr 1e-3: the peer writes NaN at larger rates on random inputs (its
    float32 SVD fails), and the step's cost does not depend on the rate.
    """
    import pytorch_optimizer

    hidden = list(cfg["model"]["hidden"])
    batch = int(cfg["benchmarks"][THROUGHPUT_BENCHMARK]["batch_size"])
    ours = {**cfg["optimizers"]["shampoo"], "lr": 1e-3}
    freq = int(ours.get("update_freq", 10))
    cpu = torch.device("cpu")
    times, root_share = {}, {}
    variants = {"float64 roots": ("float64", False), "float32 roots": ("float32", False),
                "float32 roots, gradient factors": ("float32", True)}
    configured_dtype, factored = ours.get("root_dtype", "float64"), bool(ours.get("gradient_factors", False))
    configured = f"{configured_dtype} roots" + (", gradient factors" if factored else "")
    variants.setdefault(configured, (configured_dtype, factored))  # a config's variant the list lacks is timed too
    for label, (dtype, factors) in variants.items():
        entry = {**ours, "root_dtype": dtype, "gradient_factors": factors}
        seconds, opt = step_time(entry, hidden, batch, steps, cpu)
        times[label], root_share[label] = seconds, opt.root_time_s / (seconds * steps)
    peer, _ = step_time(lambda p: pytorch_optimizer.Shampoo(p, lr=1e-3, preconditioning_compute_steps=freq),
                        hidden, batch, steps, cpu)
    widths = [bound.IN_FEATURES, *hidden, bound.CLASSES]
    step_flops = flops.model(widths, batch) + flops.shampoo(ours, widths, batch)
    return {
        "configured": configured,
        "step_ms": {k: 1e3 * v for k, v in times.items()},
        "peer_step_ms": 1e3 * peer,
        "root_fraction": root_share,
        "ratio_to_peer": times[configured] / peer,
        "flops_per_step": step_flops,
        "lower_bound_ms": 1e3 * step_flops / peak,
        "ratio_to_lower_bound": times[configured] * peak / step_flops,
        "update_freq": freq,
        "batch": batch,
        "gradient_factors": factored,
    }


def step_bound_figures(cfg: dict, steps: int, peak: float) -> dict[str, Any]:
    """Figure 8: each config optimizer whose registry type counts its FLOPs (``OptimizerType.flops``:
    Shampoo, OWM, Memory Shampoo), its training step on the config's MLP at the class-incremental
    batch (as the config has it, lr included) / its FLOP lower bound at the matmul peak."""
    hidden = list(cfg["model"]["hidden"])
    batch = int(cfg["benchmarks"][THROUGHPUT_BENCHMARK]["batch_size"])
    widths = [bound.IN_FEATURES, *hidden, bound.CLASSES]
    out: dict[str, Any] = {}
    for name, entry in cfg["optimizers"].items():
        row = registry.TYPES.get(entry["type"])
        if row is None or row.flops is None or "regularizer" in entry:
            continue
        step_flops = flops.model(widths, batch) + flops.step(entry, widths, batch)
        seconds, _ = step_time(entry, hidden, batch, steps, torch.device("cpu"))
        out[name] = {"type": entry["type"], "step_ms": 1e3 * seconds, "flops_per_step": step_flops,
                     "lower_bound_ms": 1e3 * step_flops / peak, "ratio_to_lower_bound": seconds * peak / step_flops}
    return out


# ---- 3, 4: training throughput, the fixed cost of a job, an SGD step's FLOP rate


def throughput_spec(cfg: dict, optimizer: str, epochs: int) -> dict:
    """A run spec (``optbias.continual.types.RunSpec``) of the throughput benchmark at ``epochs`` per task."""
    bench_cfg = {**cfg["benchmarks"][THROUGHPUT_BENCHMARK], "epochs_per_task": int(epochs)}
    return {"benchmark": THROUGHPUT_BENCHMARK, "benchmark_cfg": bench_cfg, "optimizer": optimizer,
            "optimizer_cfg": cfg["optimizers"][optimizer], "seed": 0, "model": cfg["model"],
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 10}}


def trained_samples(tasks: list, epochs: int) -> int:
    return epochs * sum(len(t.y_train) for t in tasks)


def plain_loop_seconds(cfg: dict, optimizer: str, tasks: list, epochs: int) -> float:
    """The same training with nothing around it: one seeded shuffle per epoch, slice, step."""
    model = init_model(0, cfg["model"])
    opt = registry.build(cfg["optimizers"][optimizer], model.parameters(), optimizer)
    batch = int(cfg["benchmarks"][THROUGHPUT_BENCHMARK]["batch_size"])
    generator = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    for task in tasks:
        for _ in range(epochs):
            order = torch.randperm(len(task.y_train), generator=generator)
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                loss = F.cross_entropy(model(task.x_train[idx]), task.y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return time.perf_counter() - start


def avalanche_seconds(cfg: dict, optimizer: str, tasks: list, epochs: int) -> float | None:
    """Training time of Avalanche's ``Naive`` strategy (plain fine-tuning) on the same tasks, or
    None when ``avalanche-lib`` is not installed. Evaluation is left out of the timing."""
    if importlib.util.find_spec("avalanche") is None:
        return None
    from avalanche.benchmarks.scenarios.deprecated.generators import tensors_benchmark  # avalanche-lib 0.6
    from avalanche.training.plugins import EvaluationPlugin
    from avalanche.training.supervised import Naive

    scenario = tensors_benchmark(train_tensors=[(t.x_train, t.y_train) for t in tasks],
                                 test_tensors=[(t.x_test, t.y_test) for t in tasks], task_labels=[0] * len(tasks))
    model = init_model(0, cfg["model"])
    opt = registry.build(cfg["optimizers"][optimizer], model.parameters(), optimizer)
    strategy = Naive(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
                     train_mb_size=int(cfg["benchmarks"][THROUGHPUT_BENCHMARK]["batch_size"]), train_epochs=epochs,
                     device="cpu", evaluator=EvaluationPlugin(loggers=[]))
    start = time.perf_counter()
    for experience in scenario.train_stream:
        strategy.train(experience, num_workers=0)
    return time.perf_counter() - start


def job_seconds(code: str) -> float:
    """Wall seconds of a fresh ``python -c code`` (what each Snakemake job pays to start)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def throughput_figures(cfg: dict, dataset: Path, epochs: tuple[int, int], peak: float,
                       repeats: int = 3) -> dict[str, Any]:
    """Figure 3 (marginal throughput against the plain loop and Avalanche, fixed cost of a job) and 4.

    Marginal throughput: (samples at the larger budget - samples at the smaller) / (time difference),
    for ``train_run`` (its own wall time), the plain loop and Avalanche alike; it leaves out what
    does not grow with the budget (data loading, evaluation). Each time is the best of ``repeats``,
    after one warm-up run in this process.
    """
    make_deterministic(0, 1)
    low, high = epochs
    tasks = benchmarks.get(THROUGHPUT_BENCHMARK).build(data.load(dataset), cfg["benchmarks"][THROUGHPUT_BENCHMARK])
    samples = {e: trained_samples(tasks, e) for e in epochs}
    extra = samples[high] - samples[low]
    out: dict[str, Any] = {"benchmark": THROUGHPUT_BENCHMARK, "epochs": list(epochs), "samples": samples,
                           "repeats": repeats,
                           "avalanche": importlib.util.find_spec("avalanche") is not None}
    def best(measure: Callable[[int], float | None], e: int) -> float | None:  # the fastest of the repeats
        times = [measure(e) for _ in range(repeats)]
        return None if times[0] is None else min(times)

    for optimizer in ("sgd", "adamw"):
        def ours_s(e: int, optimizer: str = optimizer) -> float:
            return train_run(throughput_spec(cfg, optimizer, e), dataset, progress=False)["timing"]["wall_time_s"]

        ours_s(1)  # warm-up: the first run in a process pays one-off costs (measured below as the fixed cost)
        ours = {e: best(ours_s, e) for e in epochs}
        plain = {e: best(lambda e: plain_loop_seconds(cfg, optimizer, tasks, e), e) for e in epochs}
        for name, t in (("train_run", ours), ("plain loop", plain)):
            if t[high] <= t[low]:
                raise RuntimeError(f"optbias bench: {name} ({optimizer}) took no longer at {high} than at {low} epochs "
                                   "per task: timing noise exceeds the difference; use a larger --epochs HIGH")
        rates = {"optbias": extra / (ours[high] - ours[low]), "plain torch loop": extra / (plain[high] - plain[low])}
        avalanche = {e: best(lambda e: avalanche_seconds(cfg, optimizer, tasks, e), e) for e in epochs}
        if avalanche[low] is not None:
            rates["avalanche Naive"] = extra / (avalanche[high] - avalanche[low])
        out[optimizer] = {"samples_per_s": rates,
                          "ratio_to_plain": rates["optbias"] / rates["plain torch loop"],
                          "ratio_to_avalanche": (rates["optbias"] / rates["avalanche Naive"]
                                                 if "avalanche Naive" in rates else None)}

    # The fixed cost of one job, in fresh processes (the fastest of `repeats` each): the imports alone,
    # then with torch._dynamo, which every built-in torch.optim optimizer imports at its first step
    # (torch/optim/optimizer.py, _use_grad_for_differentiable), then the imports and one whole run.
    spec = json.dumps(throughput_spec(cfg, "sgd", low))
    fresh = lambda code: min(job_seconds(code) for _ in range(repeats))  # noqa: E731
    imports = fresh("import optbias.continual.train")
    dynamo = fresh("import optbias.continual.train, torch._dynamo") - imports
    whole = fresh(f"import json; from optbias.continual.train import train_run; "
                  f"train_run(json.loads({spec!r}), {str(dataset)!r}, progress=False)")
    fixed = whole - samples[low] / out["sgd"]["samples_per_s"]["optbias"]
    out["fixed_cost_s"] = {"python and imports": imports, DYNAMO_ROW: dynamo,
                           "warm-up, data loading, evaluation": fixed - imports - dynamo, "per job": fixed}

    hidden, batch = list(cfg["model"]["hidden"]), int(cfg["benchmarks"][THROUGHPUT_BENCHMARK]["batch_size"])
    sgd_step, _ = step_time(cfg["optimizers"]["sgd"], hidden, batch, 200, torch.device("cpu"))
    achieved = flops.model([784, *hidden, 10], batch) / sgd_step
    out["sgd_step"] = {"ms": 1e3 * sgd_step, "gflops": achieved / 1e9, "ratio_to_peak": achieved / peak}
    return out


# ---- 6: seeds batched in one stacked model against one after another


def batched_figures(cfg: dict, dataset: Path, epochs: int, repeats: int = 3) -> dict[str, Any]:
    """Figure 6: for each optimizer entry of ``cfg`` whose type the batched mode trains (``registry.BATCHABLE``:
    the element-wise types and Shampoo; an entry with ``gradient_factors`` on also as "<name> (dense
    gradients)" with it off, since the stacked runs always use dense gradients; an entry with a
    reference regularizer is never batched, so it is left out),
    the wall time of ``train_runs`` over every seed of ``cfg["seeds"]`` on the throughput benchmark at
    ``epochs`` per task, one after another (``batch_seeds: false``) and batched (``true``); the
    fastest of ``repeats`` each, after one warm-up of each mode. ``speedup`` = one after another /
    batched. Whole jobs, data loading and evaluation included: what a Snakemake job would take."""
    from ..continual.train import train_runs

    seeds = [int(s) for s in cfg["seeds"]]
    out: dict[str, Any] = {"benchmark": THROUGHPUT_BENCHMARK, "epochs": epochs, "seeds": len(seeds),
                           "repeats": repeats, "optimizers": {}}
    rows = {}  # row name -> (config entry name, optimizer entry)
    for name, entry in cfg["optimizers"].items():
        if entry["type"] not in registry.BATCHABLE or "regularizer" in entry:  # a regularized entry is never batched
            continue
        rows[name] = (name, entry)
        if entry.get("gradient_factors"):  # the stacked runs use dense gradients: the same FLOPs both ways too
            rows[f"{name} (dense gradients)"] = (name, {**entry, "gradient_factors": False})
    for name, (base, entry) in rows.items():

        def job_s(batch: bool, base: str = base, entry: dict = entry) -> float:
            specs = []
            for seed in seeds:
                spec = {**throughput_spec(cfg, base, epochs), "optimizer_cfg": entry}
                specs.append({**spec, "seed": seed, "train": {**spec["train"], "batch_seeds": batch}})
            start = time.perf_counter()
            train_runs(specs, dataset, [None] * len(specs), progress=False, resume_states=False)
            return time.perf_counter() - start

        times = {}
        for batch in (False, True):
            job_s(batch)  # warm-up
            times[batch] = min(job_s(batch) for _ in range(repeats))
        out["optimizers"][name] = {"type": entry["type"], "one_by_one_s": times[False], "batched_s": times[True],
                                   "speedup": times[False] / times[True]}
    return out


# ---- the whole benchmark


def merged_config(config_path: Path, default: Path = Path("config/config.yaml")) -> dict:
    """The config as Snakemake sees it with ``--configfile config_path``: ``config_path`` merged, key
    by key (nested mappings recursively), on top of the embedded default when that file exists."""
    from snakemake.utils import update_config  # Snakemake's own merge, so the result is what rules see

    top = yaml.safe_load(Path(config_path).read_text()) or {}
    if not Path(default).is_file() or Path(default).resolve() == Path(config_path).resolve():
        return top
    config = yaml.safe_load(Path(default).read_text())
    update_config(config, top)
    return config


def run(config_path: Path, workdir: Path, steps: int = 100, epochs: tuple[int, int] = (2, 20),
        peak_n: int = 2048, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """All eight figures on one thread, for the config at ``config_path`` (merged onto
    config/config.yaml, as ``--configfile`` does) and the pipeline outputs under ``workdir``
    (figure 5; absent when no run completed there).

    Raises ``ValueError`` unless 0 < epochs[0] < epochs[1] (the marginal throughput needs two budgets).
    """
    if not 0 < epochs[0] < epochs[1]:
        raise ValueError(f"optbias bench: --epochs LOW HIGH must satisfy 0 < LOW < HIGH, got {epochs[0]} {epochs[1]}")
    cfg = merged_config(config_path)
    torch.set_num_threads(1)
    progress(f"matmul peak ({peak_n} x {peak_n}, float32, 1 thread)")
    peak = matmul_peak(torch.device("cpu"), peak_n)
    # Are the cores the bound divides by independent? One product on every core at once, against one core's.
    cores = machine()["cpu_count"]
    torch.set_num_threads(cores)
    peak_all = matmul_peak(torch.device("cpu"), peak_n)
    torch.set_num_threads(1)
    progress(f"Shampoo: ours (float64 and float32 roots) and pytorch_optimizer's, {steps} steps each")
    result: dict[str, Any] = {"machine": machine(), "threads": 1, "matmul_peak_gflops": peak / 1e9,
                              "matmul_peak_all_cores_gflops": peak_all / 1e9,
                              "core_scaling": peak_all / (peak * cores),
                              "shampoo": shampoo_figures(cfg, steps, peak)}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "mnist-5k.pt"
        data.fetch("mnist-5k", dataset, {})
        progress(f"throughput: train_run, a plain loop{', Avalanche' if importlib.util.find_spec('avalanche') else ''}"
                 f" at {epochs[0]} and {epochs[1]} epochs per task; the fixed cost of a job")
        result["throughput"] = throughput_figures(cfg, dataset, epochs, peak)
        progress(f"batched seeds: every batchable optimizer's {len(cfg['seeds'])} seeds one after another and "
                 f"batched, {epochs[0]} epochs per task")
        with contextlib.redirect_stdout(io.StringIO()):  # train_runs prints a line per run
            result["batched"] = batched_figures(cfg, dataset, epochs[0])
    progress(f"step bounds: every configured optimizer with a FLOP count, {steps} steps each")
    result["step_bounds"] = step_bound_figures(cfg, steps, peak)
    wall = snakemake_wall_time(workdir)
    times = stage_times(workdir, None if wall is None else (wall["start"], wall["end"]))
    # Even if every Shampoo job took no time, the other jobs need this long on this machine's cores.
    times["other_jobs_floor_s"] = (times["job_s"] - times["shampoo_s"]) / max(cores, 1)
    times["cores"] = cores
    result["reproduce"] = {"wall": wall, **times}
    result["bound"] = None
    if wall is not None:  # the runs written during that invocation, on the cores it was given
        runs = bound.runs_bound(workdir, peak, (wall["start"], wall["end"]))
        if runs["bound_s"] > 0:
            result["bound"] = {**bound.breakdown(runs, times, wall["wall_s"], wall.get("cores") or cores),
                               "runs": runs}
    return result


def _ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def render(result: dict[str, Any], command: str) -> str:
    """The figures as markdown (what ``docs/performance.md`` holds)."""
    m, sh, tp, rep = result["machine"], result["shampoo"], result["throughput"], result["reproduce"]
    lines = [
        "# Performance",
        "",
        f"Generated by `{command}` (src/optbias/perf/bench.py) on {datetime.now():%Y-%m-%d %H:%M}; do not edit by hand.",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} logical CPUs, {m['cpu_capability']}, BLAS {m['blas']}, "
        f"torch {m['torch']}, Python {m['python']}; every timing on 1 thread. "
        f"Measured float32 matmul peak: {result['matmul_peak_gflops']:.1f} GFLOP/s on one core; on all "
        f"{m['cpu_count']} at once {result['matmul_peak_all_cores_gflops']:.1f} GFLOP/s, "
        f"{result['core_scaling']:.2f} of {m['cpu_count']} x one core's (below 1: the cores share the "
        "matrix units or the memory, and the bound, which divides by the cores, is optimistic).",
        "",
        "| # | figure | ratio | target |",
        "|---|---|---|---|",
        f"| 1 | our Shampoo step ({sh['configured']}) / `pytorch_optimizer.Shampoo` step | "
        f"{_ratio(sh['ratio_to_peer'])} | <= 0.5 |",
        f"| 2 | our Shampoo step / its FLOP lower bound at the matmul peak | {_ratio(sh['ratio_to_lower_bound'])} | "
        "(reported) |",
    ]
    for opt in ("sgd", "adamw"):
        lines.append(f"| 3 | {opt} training throughput / plain torch loop | {_ratio(tp[opt]['ratio_to_plain'])} | >= 0.9 |")
        lines.append(f"| 3 | {opt} training throughput / Avalanche `Naive` | "
                     f"{_ratio(tp[opt]['ratio_to_avalanche']) if tp['avalanche'] else 'avalanche-lib not installed'} | "
                     ">= 1.4 |")
    lines.append(f"| 4 | achieved GFLOP/s of an SGD step / matmul peak | {_ratio(tp['sgd_step']['ratio_to_peak'])} | "
                 "(reported) |")
    wall = rep["wall"]
    wall_text = "no complete run here" if wall is None else f"{wall['wall_s'] / 60:.1f} min (a time)"
    lines.append(f"| 5 | `make reproduce` Snakemake wall time | {wall_text} | <= 15 min |")
    for name, b in result.get("batched", {}).get("optimizers", {}).items():
        lines.append(f"| 6 | {name}: job time of its seeds one after another / batched (speed-up) | "
                     f"{_ratio(b['speedup'])} | (reported; `auto` batches on CUDA only) |")
    bd = result.get("bound")
    lines.append(f"| 7 | `make reproduce` wall time / its compute bound on {bd['cores'] if bd else rep['cores']} cores | "
                 + ("no complete run here" if bd is None else
                    f"{_ratio(bd['ratio'])} ({bd['wall_s'] / 60:.1f} min / {bd['bound_wall_s'] / 60:.1f} min)")
                 + " | <= 1.5, or <= 15 min |")
    for name, f in result.get("step_bounds", {}).items():
        lines.append(f"| 8 | {name} ({f['type']}) step / its FLOP lower bound at the matmul peak | "
                     f"{_ratio(f['ratio_to_lower_bound'])} | <= 1.5 |")
    lines += ["", "## 1, 2. Shampoo", "",
              f"Default MLP at batch {sh['batch']}, roots every {sh['update_freq']} steps "
              "(the peer: `preconditioning_compute_steps`), lr 1e-3 for all (the peer writes NaN at larger rates).", "",
              "| implementation | ms/step | share of the step in roots |", "|---|---|---|"]
    for label, ms in sh["step_ms"].items():
        lines.append(f"| optbias Shampoo, {label} | {ms:.1f} | {sh['root_fraction'][label]:.2f} |")
    lines += [f"| `pytorch_optimizer.Shampoo` (float32 SVD roots, no grafting) | {sh['peer_step_ms']:.1f} | |", "",
              f"FLOP lower bound per step of the configured variant ({sh['configured']}): "
              f"{sh['flops_per_step'] / 1e9:.3f} GFLOP (forward and backward, the statistics "
              "and the two preconditioning products"
              f"{' from the gradient factors where cheaper' if sh.get('gradient_factors') else ''}, "
              "and the roots' tridiagonal reduction and recomposition amortized "
              f"over {sh['update_freq']} steps) = {sh['lower_bound_ms']:.1f} ms at the peak. Figure 1 at 0.5 would "
              f"need our step at {0.5 * sh['peer_step_ms']:.1f} ms, "
              f"{0.5 * sh['peer_step_ms'] / sh['lower_bound_ms']:.2f}x this bound (now "
              f"{sh['ratio_to_lower_bound']:.2f}x).", "",
              "## 3, 4. Training throughput and the fixed cost of a job", "",
              f"Benchmark {tp['benchmark']}, seed 0, marginal throughput between {tp['epochs'][0]} and "
              f"{tp['epochs'][1]} epochs per task (samples/s; fixed costs cancel in the difference).", "",
              "| optimizer | optbias `train_run` | plain torch loop | Avalanche `Naive` |", "|---|---|---|---|"]
    for opt in ("sgd", "adamw"):
        r = tp[opt]["samples_per_s"]
        av = f"{r['avalanche Naive']:,.0f}" if "avalanche Naive" in r else "not installed (`pip install -r requirements.lock`)"
        lines.append(f"| {opt} | {r['optbias']:,.0f} | {r['plain torch loop']:,.0f} | {av} |")
    fc = tp["fixed_cost_s"]
    lines += ["", "Fixed cost of one training job (one seed, the smaller budget), the fastest of "
              f"{tp.get('repeats', 3)} fresh processes. The torch._dynamo row is paid by every job whose optimizer is a "
              "built-in of torch.optim: its first `step()` imports torch._dynamo even when nothing is compiled; "
              "it cannot be skipped without patching torch.", "",
              "| part | seconds |", "|---|---|", *[f"| {k} | {v:.2f} |" for k, v in fc.items()], "",
              *(["The warm-up row is a difference of timings (the whole job minus its imports and its training at "
                 "the measured throughput); below 0 it is smaller than their noise, i.e. about nothing.", ""]
                if fc["warm-up, data loading, evaluation"] < 0 else []),
              f"An SGD step: {tp['sgd_step']['ms']:.2f} ms, {tp['sgd_step']['gflops']:.1f} GFLOP/s.", "",
              "## 5. `make reproduce`", ""]
    if wall is not None:
        lines.append(f"Wall time of the complete Snakemake run with the most jobs (`{wall['log']}`, {wall['jobs']} jobs): "
                     f"{wall['wall_s'] / 60:.1f} min (without creating the environment).")
    if rep["jobs"]:
        lines += [f"Job time from the `benchmarks/` files of that run ({rep['jobs']} jobs; jobs without one, such as "
                  f"figures and summaries, are not counted): {rep['job_s']:,.0f} s, of which Shampoo jobs "
                  f"{rep['shampoo_s']:,.0f} s ({rep['shampoo_s'] / rep['job_s']:.0%}). The other jobs alone need "
                  f"{rep['other_jobs_floor_s'] / 60:.1f} min on {rep['cores']} cores, even if Shampoo cost nothing.", "",
                  *stage_table(rep, share=True)]
    else:
        lines.append("No `benchmarks/` files here: run `make reproduce` first.")
    lines += render_bound(result)
    if result.get("batched"):
        bt = result["batched"]
        lines += ["", "## 6. Seeds batched in one stacked model", "",
                  f"One job of {bt['seeds']} seeds on {bt['benchmark']} at {bt['epochs']} epochs per task, whole "
                  f"(data loading and evaluation included), the fastest of {bt['repeats']}: every seed one after another "
                  "(`train.batch_seeds: false`) against all seeds in one stacked model (`true`, "
                  "src/optbias/continual/batched.py; Shampoo through src/optbias/optim/stacked_shampoo.py). `auto`, "
                  "the default, batches on CUDA only; on this CPU a "
                  "speed-up below 1 means batching is slower here. The stacked runs always use dense gradients "
                  "(Shampoo's gradient factors need the model's layers), so a \"(dense gradients)\" row times the "
                  "same entry with `gradient_factors: false` both ways: the cost of batching alone.", "",
                  "| optimizer | type | one after another (s) | batched (s) | speed-up |", "|---|---|---|---|---|"]
        for name, b in bt["optimizers"].items():
            lines.append(f"| {name} | {b['type']} | {b['one_by_one_s']:.2f} | {b['batched_s']:.2f} | "
                         f"{b['speedup']:.2f} |")
    return "\n".join(lines) + "\n"


def render_bound(result: dict[str, Any]) -> list[str]:
    """Markdown lines of figures 7 and 8: the whole run against its compute bound (``optbias.perf.bound``),
    the gap part by part and per optimizer type, and each bounded optimizer's step against its own."""
    lines = ["", "## 7. The whole run against its compute bound", ""]
    bd = result.get("bound")
    if bd is None:
        lines.append("No complete Snakemake run with training runs here: run `make reproduce` first.")
    else:
        runs = bd["runs"]
        lines += [f"The bound (src/optbias/perf/bound.py): every training run's optimizer steps x the FLOPs of a step "
                  f"(src/optbias/perf/flops.py: the MLP's forward and backward matrix products and the optimizer's "
                  f"matrix work, counted from below), plus EWC's Fisher passes, at the matmul peak measured above, over "
                  f"{bd['cores']} cores. {runs['runs']} runs under `data/`: {runs['bound_s'] / 60:.1f} core-minutes, "
                  f"so {bd['bound_wall_s'] / 60:.1f} min of wall time; the run took {bd['wall_s'] / 60:.1f} min, "
                  f"{bd['ratio']:.2f}x the bound.", "",
                  f"Where the {bd['cores']} x {bd['wall_s'] / 60:.1f} = {bd['cores'] * bd['wall_s'] / 60:.1f} "
                  "core-minutes went:", "",
                  "| part | core-minutes | share |", "|---|---|---|"]
        total = bd["cores"] * bd["wall_s"]
        lines += [f"| {label} | {v / 60:.1f} | {v / total:.0%} |" for label, v in bd["parts"].items()]
        if runs["eval_recorded"] < runs["runs"]:
            lines += ["", f"{runs['runs'] - runs['eval_recorded']} of {runs['runs']} runs predate the "
                      "`eval_time_s` field: their evaluation is counted in the training line."]
        if runs["not_estimated"]:
            lines += ["", f"Optimizer types with no FLOP estimate, bounded by the model alone: "
                      f"{', '.join(runs['not_estimated'])}."]
        lines += ["", "Per optimizer type: its runs' training time (evaluation excluded where recorded) against "
                  "their bound.", "", "| type | runs | steps | bound (core-min) | training (core-min) | ratio |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {kind} | {r['runs']} | {r['steps']:,} | {r['bound_s'] / 60:.1f} | {r['train_s'] / 60:.1f} | "
                  f"{_ratio(r['ratio'])} |" for kind, r in runs["by_type"].items()]
    lines += ["", "## 8. Optimizer steps against their FLOP bounds", "",
              "Each configured optimizer whose registry type counts its FLOPs (`OptimizerType.flops`), one training "
              "step of the config's MLP at the class-incremental batch, with its configured options.", "",
              "| optimizer | type | ms/step | bound (ms) | ratio |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {f['type']} | {f['step_ms']:.1f} | {f['lower_bound_ms']:.1f} | "
              f"{f['ratio_to_lower_bound']:.2f} |" for name, f in result.get("step_bounds", {}).items()]
    return lines


def main(config_path: Path, workdir: Path, output: Path | None, steps: int, epochs: tuple[int, int],
         peak_n: int) -> dict[str, Any]:
    """``optbias bench``: measure, print the markdown, write it (atomically) to ``output`` (a .md
    path) and the raw numbers next to it as .json. Raises ``ValueError`` on an output not ending in .md."""
    if output is not None and Path(output).suffix != ".md":
        raise ValueError(f"optbias bench: --output {output}: give a .md path (the numbers go next to it as .json)")
    result = run(config_path, workdir, steps, epochs, peak_n)
    options = {"--config": (str(config_path), "config/config.yaml"), "--workdir": (str(workdir), "."),
               "--steps": (steps, 100), "--epochs": (f"{epochs[0]} {epochs[1]}", "2 20"), "--peak-n": (peak_n, 2048)}
    command = "optbias bench" + "".join(f" {k} {v}" for k, (v, default) in options.items() if v != default)
    text = render(result, command)
    print(text)
    if output is not None:
        fileio.atomic_write_bytes(output, text.encode())
        fileio.atomic_write_json(Path(output).with_suffix(".json"), result)
    return result
