import json
import os
import re
import shlex
import sys

from snakemake.utils import min_version, validate

from optbias import benchmarks as _benchmarks
from optbias.config import check as _check_config

min_version("8.0")


envvars:
    "PATH",


# Structure first (names the bad key), then the names only the library knows (lists valid ones).
validate(config, schema="../schemas/config.schema.yaml")
_check_config(config)

# Jobs call the `optbias` command of the environment that runs snakemake (e.g. .venv), even when
# that environment is not activated. Under --use-conda, the rule's conda env comes first instead.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
ENV = "../envs/optbias.yaml"
DATASET = config["dataset"]
BENCHMARKS = list(config["benchmarks"])
OPTIMIZERS = list(config["optimizers"])
SEEDS = [int(s) for s in config["seeds"]]
RUN = "data/runs/{benchmark}/{optimizer}/seed{seed}"


def _alternatives(names):
    return "|".join(re.escape(n) for n in names)


wildcard_constraints:
    benchmark=_alternatives(BENCHMARKS),
    optimizer=_alternatives(OPTIMIZERS),
    seed=r"\d+",
    dataset=_alternatives([DATASET]),


def quoted_json(obj):
    """A JSON argument safe to paste into a shell command."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def train_spec(wildcards):
    """Everything that determines one run; a change here (and only here) reruns it."""
    return {
        "benchmark": wildcards.benchmark,
        "benchmark_cfg": config["benchmarks"][wildcards.benchmark],
        "optimizer": wildcards.optimizer,
        "optimizer_cfg": config["optimizers"][wildcards.optimizer],
        "seed": int(wildcards.seed),
        "model": config["model"],
        "train": config.get("train", {}),
    }


def run_metrics(benchmark):
    return expand(f"{RUN}/metrics.json", benchmark=benchmark, optimizer=OPTIMIZERS, seed=SEEDS)


def figure_files(stem):
    return [f"figures/{stem}.pdf", f"figures/{stem}.png"]


def all_outputs():
    outputs = expand("data/summary/{benchmark}.json", benchmark=BENCHMARKS)
    outputs += expand("figures/accuracy_matrices_{benchmark}.pdf", benchmark=BENCHMARKS)
    if "class_incremental" in BENCHMARKS:
        outputs.append("figures/class_incremental_final_accuracy.pdf")
    if "permuted" in BENCHMARKS:
        outputs.append("figures/permuted_first_task_accuracy.pdf")
    return outputs
