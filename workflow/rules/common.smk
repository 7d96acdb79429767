import json
import os
import re
import shlex
import sys

from snakemake.utils import min_version, validate

from optbias import benchmarks as _benchmarks
from optbias import config as _config
from optbias import optim as _optim

min_version("8.0")


envvars:
    "PATH",


# Structure first (names the bad key), then the names only the library knows (lists valid ones).
validate(config, schema="../schemas/config.schema.yaml")
_config.check(config)

# Jobs call the `optbias` command of the environment that runs snakemake (e.g. .venv), even when
# that environment is not activated. Under --use-conda, the rule's conda env comes first instead.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
ENV = "../envs/optbias.yaml"
DATASET = config["dataset"]
BENCHMARKS = list(config["benchmarks"])
OPTIMIZERS = list(config["optimizers"])  # the headline comparison, in legend order
ENTRIES = _config.optimizer_entries(config)  # plus the Shampoo ablation's variants
SEEDS = [int(s) for s in config["seeds"]]
ABLATION = config.get("ablation", {})
ABLATION_ORDER = [ABLATION["base"], *ABLATION["variants"]] if ABLATION else []
ABLATION_SEEDS = [int(s) for s in ABLATION.get("seeds", SEEDS)]  # a subset of SEEDS (config.check)
SWEEP = config.get("sweep", {})
RUN = "data/runs/{benchmark}/{optimizer}/seed{seed}"
SWEEP_RUN = "data/sweep/{benchmark}/{optimizer}/lr{lr}"


def _alternatives(names):
    return "|".join(re.escape(n) for n in names)


wildcard_constraints:
    benchmark=_alternatives(BENCHMARKS),
    optimizer=_alternatives(ENTRIES),
    seed=r"\d+",
    lr=r"[0-9][0-9.e+-]*",
    dataset=_alternatives([DATASET]),


def quoted_json(obj):
    """A JSON argument safe to paste into a shell command."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def run_spec(benchmark, optimizer, seed):
    """Everything that determines one run; a change here (and only here) reruns it."""
    return {
        "benchmark": benchmark,
        "benchmark_cfg": config["benchmarks"][benchmark],
        "optimizer": optimizer,
        "optimizer_cfg": ENTRIES[optimizer],
        "seed": int(seed),
        "model": config["model"],
        "train": _config.train_overrides(config, optimizer),
    }


def expected_cost(benchmark, optimizer, n_runs):
    """A job's priority: its expected run time in arbitrary units (passes over the data x step cost).

    Snakemake starts the highest priority first; longest-first keeps both cores busy to the end
    instead of leaving one long job running alone after everything else has finished.
    """
    passes = _benchmarks.get(benchmark).passes(config["benchmarks"][benchmark])
    return n_runs * passes * _optim.relative_step_cost(ENTRIES[optimizer]["type"])


def sweep_spec(benchmark, optimizer, lr):
    """A sweep run: one learning rate, the validation seed, a held-out split, divergence recorded."""
    spec = run_spec(benchmark, optimizer, SWEEP["seed"])
    spec["optimizer_cfg"] = {**spec["optimizer_cfg"], "lr": float(lr)}
    spec["train"] = {**spec["train"], "validation_fraction": SWEEP["validation_fraction"], "on_divergence": "record"}
    return spec


def lr_label(lr):
    return f"{float(lr):g}"


def run_metrics(benchmark, optimizers=OPTIMIZERS, seeds=SEEDS):
    return expand(f"{RUN}/metrics.json", benchmark=benchmark, optimizer=optimizers, seed=seeds)


def sweep_candidates():
    """(optimizer, learning-rate label) of every sweep candidate, in config order."""
    return [(name, lr_label(lr)) for name, lrs in SWEEP.get("lrs", {}).items() for lr in lrs]


def sweep_metrics(benchmarks=BENCHMARKS):
    return [f"{SWEEP_RUN}/metrics.json".format(benchmark=b, optimizer=name, lr=lr)
            for b in benchmarks for name, lr in sweep_candidates()]


def ablation_metrics(benchmark):
    return run_metrics(benchmark, ABLATION_ORDER, ABLATION_SEEDS)


def all_outputs():
    outputs = expand("data/summary/{benchmark}.json", benchmark=BENCHMARKS)
    outputs += expand("figures/accuracy_matrices_{benchmark}.pdf", benchmark=BENCHMARKS)
    if "class_incremental" in BENCHMARKS:
        outputs.append("figures/class_incremental_final_accuracy.pdf")
    if "permuted" in BENCHMARKS:
        outputs.append("figures/permuted_first_task_accuracy.pdf")
    if SWEEP:
        outputs += ["data/sweep/selected.json", "figures/lr_sweep.pdf"]
    if ABLATION:
        outputs += ["data/summary/shampoo_ablation.md", "figures/shampoo_ablation.pdf"]
    outputs += powerprop_outputs()  # below; [] without a `powerprop:` block
    outputs.append("data/metrics/headline.json")  # versioned by DVC, with the curves (dvc.smk)
    # Probes (workflow/rules/probes.smk): per-run probes.json, summaries, four figures.
    outputs += expand("data/probes/{benchmark}/{optimizer}/seed{seed}/probes.json", benchmark=BENCHMARKS,
                      optimizer=OPTIMIZERS, seed=SEEDS)
    outputs += expand("data/summary/probes_{benchmark}.json", benchmark=BENCHMARKS)
    outputs.append("data/summary/weight_distance.json")  # claim 9, weights (workflow/rules/weights.smk)
    outputs += ["figures/effective_rank.pdf", "figures/probe_vs_head_accuracy.pdf"]
    if "class_incremental" in BENCHMARKS:
        outputs += ["figures/cross_class_cosine_class_incremental.pdf", "figures/paper_figure_class_incremental.pdf"]
    if config.get("paper"):
        outputs += ["paper/audit.md", "data/audit.json", "paper/build/paper.html"]
    return outputs


# ---- Powerprop experiment (rules in powerprop.smk; empty without a `powerprop:` block)
from optbias import powerprop_runs as _powerprop

POWERPROP = config.get("powerprop", {})
if POWERPROP:
    _powerprop.check_config(POWERPROP)  # names the bad method and key (e.g. a missing alpha)
PP_METHODS = list(POWERPROP.get("methods", {}))
PP_SEEDS = [int(s) for s in POWERPROP.get("seeds", [])]
PP_DIR = "data/powerprop"


wildcard_constraints:
    pp_method=_alternatives(PP_METHODS) if PP_METHODS else "(?!)",


def powerprop_spec(wildcards):
    """Everything that determines one method's runs (a change here reruns that method only)."""
    settings = {k: v for k, v in POWERPROP.items() if k not in ("methods", "equivalence")}
    return {
        "method": wildcards.pp_method,
        "method_cfg": POWERPROP["methods"][wildcards.pp_method],
        "cfg": settings,
        "model": config["model"],
    }


def powerprop_outputs():
    if not POWERPROP:
        return []
    return [
        "data/summary/powerprop.json",
        f"{PP_DIR}/equivalence.json",
        "figures/powerprop_weight_magnitudes.pdf",
        "figures/powerprop_pruning.pdf",
    ]
