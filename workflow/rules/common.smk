# Helpers of every rules file: config validation, the constants of the DAG, run specs, output
# lists, and the template of the figure rules (figure_rule). The rules files hold rules and
# figure_rule calls only (snakemake --lint wants rules and functions apart). The
# run specs themselves are built by the library (optbias.specs, tested there); the functions here
# only hand it `config` and the wildcards.
#
# Parsing the Snakefile imports no torch: the config checks and the registries read names and
# constructor signatures from source (optbias.config, optbias.optim.registry), so `snakemake -n`
# answers in about a second.
import os
import re
import sys

import yaml

# jsonschema (used by `validate` below) imports rfc3987_syntax when it is installed (jupyter brings
# it), and that module compiles 39 grammars at import: 3-4 s of every `snakemake` call, more than
# the rest of parsing. Our schema checks no IRI formats, so it is not needed: an import of a module
# set to None fails, and jsonschema then skips that one format checker.
sys.modules.setdefault("rfc3987_syntax", None)

from snakemake.utils import min_version

from optbias import config as _config
from optbias import data as _data
from optbias import imports as _imports
from optbias import specs as _specs
from optbias.paper import claims as _claims
from optbias.paper import explore as _explore
from optbias.paper import render as _render

min_version("8.0")


envvars:
    "PATH",


# A --configfile changes values, not the order of keys: Snakemake merges its keys ahead of those of
# the Snakefile's configfile (DEFAULT_CONFIG, config/config.yaml in the working directory), which would
# reorder the legends and the optimizer pairs the claims name. Without that file, the --configfile's
# order stands.
if os.path.exists(DEFAULT_CONFIG):
    with open(DEFAULT_CONFIG) as _default_config:
        _config.follow_key_order(config, yaml.safe_load(_default_config) or {})

# Structure and defaults first (names the bad key), then the names only the library knows (lists
# the valid ones). Every default lives in the schema; the rules below read config keys directly.
_config.validate(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))

# Job scripts run with the Python that runs snakemake (e.g. .venv), even when that environment is
# not activated; under --use-conda, the rule's conda env instead.
ENV = "../envs/optbias.yaml"
DATASET = config["dataset"]
DATASET_NAME = _data.DISPLAY_NAMES[DATASET]  # in figure titles: "MNIST", "Fashion-MNIST"
DATA = {"data": f"data/raw/{DATASET}.pt", "manifest": f"data/raw/{DATASET}.pt.manifest.json"}
BENCHMARKS = list(config["benchmarks"])
OPTIMIZERS = list(config["optimizers"])  # the headline comparison, in legend order
ENTRIES = _config.optimizer_entries(config)  # plus the Shampoo ablation's variants and the noise-floor controls
SEEDS = [int(s) for s in config["seeds"]]
THREADS = config["train"]["threads"]
# Training-job granularity (config `seed_jobs`, schema): "together", one job per (benchmark,
# optimizer[, lr or epochs]) trains its seeds one after another; "separate", one job per seed, so that
# a cluster runs them at once. Paths of logs and benchmarks gain seed{seed} in the second case. The
# rules' params (the run specs) list every seed either way, so switching it reruns nothing.
SEED_JOBS = config["seed_jobs"]
# The config as the report shows it (the params of the paper rule), without how jobs are cut, which changes
# no result, so that switching `seed_jobs` does not render the report again.
REPORTED_CONFIG = {key: value for key, value in config.items() if key != "seed_jobs"}
# Every rule that trains (train, its ablation, the sweep and both budget rules) asks a cluster for one
# GPU when the config trains on CUDA (train.device: cuda); the SLURM plugin turns it into --gpus=1.
TRAIN_GPUS = 1 if config["train"]["device"].startswith("cuda") else 0
ABLATION = config.get("ablation", {})
ABLATION_ORDER = [ABLATION["base"], *ABLATION["variants"]] if ABLATION else []
ABLATION_SEEDS = [int(s) for s in ABLATION.get("seeds", SEEDS)]  # a subset of SEEDS (config.check)
# Claim 9's noise floor (config `noise_floor`): control name (<optimizer>-reorder) -> its headline
# optimizer; each trains on every seed of SEEDS with another batch order (rule train_control). {} without the block.
CONTROLS = _config.noise_floor_controls(config)
SWEEP = config.get("sweep", {})
SWEEP_SEEDS = [int(s) for s in SWEEP.get("seeds", [])]
BUDGET = config.get("budget", {})
BUDGET_GRID = {b: [int(e) for e in c["grid"]] for b, c in BUDGET.get("benchmarks", {}).items()}
BUDGET_SEEDS = [int(s) for s in BUDGET.get("seeds", [])]  # the experiment's, a subset of SEEDS
BUDGET_VAL_SEEDS = [int(s) for s in BUDGET.get("validation_seeds", [])]
BUDGET_OPTIMIZERS = [o for o in OPTIMIZERS if o not in BUDGET.get("exclude", [])]  # those the budget rule covers
# Config `knobs`, optimizer -> {option, grid}, tuned by the retention rule of optbias.continual.knobs;
# its runs use the sweep's validation seeds and held-out fraction.
KNOBS = config.get("knobs", {})
POWERPROP = config.get("powerprop", {})
PP_METHODS = list(POWERPROP.get("methods", {}))
PP_SEEDS = [int(s) for s in POWERPROP.get("seeds", [])]
PROBES = config["probes"]  # every key has its default from the schema
PAPER = config.get("paper", {})
RUN = "data/runs/{benchmark}/{optimizer}/seed{seed}"
SWEEP_RUN = "data/sweep/{benchmark}/{optimizer}/lr{lr}/seed{seed}"
BUDGET_VAL_RUN = "data/budget/validation/{benchmark}/{optimizer}/epochs{epochs}/seed{seed}"
BUDGET_RUN = "data/budget/runs/{benchmark}/{optimizer}/epochs{epochs}/seed{seed}"
KNOB_RUN = "data/knobs/{benchmark}/{optimizer}/{value}/seed{seed}"
PP_DIR = "data/powerprop"
PROBE = "data/probes/{benchmark}/{optimizer}/seed{seed}/probes.json"


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    benchmark=_alternatives(BENCHMARKS),
    optimizer=_alternatives(ENTRIES),
    seed=r"\d+",
    lr=r"[0-9][0-9.e+-]*",
    epochs=r"[1-9][0-9]*",
    value=r"[0-9][0-9.e+-]*",
    dataset=_alternatives([DATASET]),
    pp_method=_alternatives(PP_METHODS),


# ---- code as an input (showyourwork): the fast rules (summaries, figures, audit, paper) take the
# library files they run as inputs, so editing a figure function redraws that figure and what
# cites it. Training, probes and Powerprop runs take the hash of their code as a param instead
# (`code_version` below): they rerun when their spec or that code changes, never because a file
# was only touched (docs/pipeline.md).
# Relative to the working directory (the repository itself in `make reproduce`), so that a moved
# checkout keeps its provenance; Snakemake compares these files by checksum, not time stamp.
SRC = os.path.relpath(os.path.join(workflow.basedir, "src", "optbias"))


def code(*modules):
    """Library source files, relative to src/optbias, as inputs of a rule; fileio.py (how every
    output is serialized) is an input of each."""
    return [os.path.join(SRC, m) for m in (*modules, "fileio.py")]


def code_version(module):
    """The SHA-256 of the library code that ``module`` (its job's entry point) runs: its static import
    closure (optbias.imports.code_sha256). A param of the rules that take minutes and so do not take
    their code as an input (training, Powerprop, probes): editing a module they import reruns them,
    and a docstring edit anywhere else reruns nothing. Each training run records the same hash in its
    metrics.json (``code_sha256``)."""
    return _imports.code_sha256((module,))


TRAINING_CODE = code_version(_imports.TRAINING)  # every rule whose script is continual/train.py


# ---- run specs (optbias.specs; their shape: optbias.continual.types.RunSpec): everything that
# determines a run. The training rules' params; a change there (and only there) reruns the run.


def seed_outputs(pattern, seeds):
    """A training job's outputs: every seed's of ``seeds`` (together) or its own seed's, one of
    ``seeds`` (separate: a seed the rule does not train has no job, as in the together case)."""
    if SEED_JOBS == "together":
        return expand(pattern, seed=seeds, allow_missing=True)
    return [pattern.replace("{seed}", "{seed,%s}" % _alternatives([str(s) for s in seeds]))]


def per_seed(stem, suffix):
    """A training job's log or benchmark path: ``stem`` + ``suffix``, or ``stem``/seed{seed} + ``suffix``."""
    return stem + suffix if SEED_JOBS == "together" else os.path.join(stem, "seed{seed}") + suffix


def job_seeds(wildcards, seeds):
    """The seeds one training job runs, in order: all of ``seeds``, or the one in its wildcards."""
    return _specs.job_seeds(config, seeds, wildcards.get("seed"))


def seeds_message(seeds, kind="seeds"):
    """The end of a training job's console line: '5 seeds', or 'seed {wildcards.seed}'."""
    return f"{len(seeds)} {kind}" if SEED_JOBS == "together" else f"{kind[:-1]} {{wildcards.seed}}"


def run_spec(benchmark, optimizer, seed):
    return _specs.run_spec(config, benchmark, optimizer, seed)


def sweep_spec(benchmark, optimizer, lr, seed):
    return _specs.sweep_spec(config, benchmark, optimizer, lr, seed)


def knob_spec(benchmark, optimizer, value, seed):
    return _specs.knob_spec(config, benchmark, optimizer, value, seed)


def budget_spec(benchmark, optimizer, epochs, seed, validation):
    return _specs.budget_spec(config, benchmark, optimizer, epochs, seed, validation)


def expected_cost(benchmark, optimizer, n_runs, epochs=None):
    """A training job's priority (longest first)."""
    return _specs.expected_cost(config, benchmark, optimizer, n_runs, epochs)


def powerprop_spec(method):
    return _specs.powerprop_spec(config, method)


# ---- file lists


def run_metrics(benchmark, optimizers=OPTIMIZERS, seeds=SEEDS):
    return expand(f"{RUN}/metrics.json", benchmark=benchmark, optimizer=optimizers, seed=seeds)


def run_checkpoints(benchmark, optimizers=OPTIMIZERS, seeds=SEEDS):
    return expand(f"{RUN}/checkpoints", benchmark=benchmark, optimizer=optimizers, seed=seeds)


def probe_outputs(benchmark):
    return expand(PROBE, benchmark=benchmark, optimizer=OPTIMIZERS, seed=SEEDS)


def all_benchmarks(files):
    """``files(benchmark)`` for every benchmark, concatenated."""
    return [f for b in BENCHMARKS for f in files(b)]


def sweep_candidates():
    """(optimizer, learning-rate label) of every sweep candidate, in config order."""
    return [(name, _specs.lr_label(lr)) for name, lrs in SWEEP.get("lrs", {}).items() for lr in lrs]


def sweep_metrics(benchmarks=BENCHMARKS):
    return [f"{SWEEP_RUN}/metrics.json".format(benchmark=b, optimizer=name, lr=lr, seed=seed)
            for b in benchmarks for name, lr in sweep_candidates() for seed in SWEEP_SEEDS]


def or_sweep_twin(pattern, field, value, lr):
    """A run directory pattern: ``pattern`` with its ``{field}`` set to ``value``, or the sweep's run at
    learning-rate label ``lr`` when the cell is the sweep's (``lr`` not None: ``optbias.specs`` twins)."""
    return SWEEP_RUN.replace("{lr}", lr) if lr else pattern.replace("{%s}" % field, value)


def knob_metrics(benchmarks=BENCHMARKS):
    """Every run of the retention rule: tuned optimizer x candidate value x validation seed, per benchmark
    (a sweep run where it is the same run: ``optbias.specs.knob_twin``)."""
    files = []
    for b in benchmarks:
        for name, knob in KNOBS.items():
            for v in knob["grid"]:
                pattern = or_sweep_twin(KNOB_RUN, "value", _specs.knobs.value_label(v), _specs.knob_twin(config, b, name, v))
                files += expand(f"{pattern}/metrics.json", benchmark=b, optimizer=name, seed=SWEEP_SEEDS)
    return files


def sweep_twin(benchmark, optimizer, epochs):
    """The sweep's learning-rate label whose runs are this budget cell's runs, or None (optbias.specs)."""
    return _specs.sweep_twin(config, benchmark, optimizer, epochs)


def budget_validation_metrics():
    """Every run of the budget rule: headline optimizer x budget x validation seed, per benchmark
    (a sweep run where it is the same run: ``sweep_twin``)."""
    files = []
    for b, grid in BUDGET_GRID.items():
        for optimizer in BUDGET_OPTIMIZERS:
            for epochs in grid:
                pattern = or_sweep_twin(BUDGET_VAL_RUN, "epochs", str(epochs), sweep_twin(b, optimizer, epochs))
                files += expand(f"{pattern}/metrics.json", benchmark=b, optimizer=optimizer, seed=BUDGET_VAL_SEEDS)
    return files


def budget_run_metrics(benchmark, epochs):
    """The experiment's runs at one budget; at the configured budget they are the headline runs."""
    if int(epochs) == int(config["benchmarks"][benchmark]["epochs_per_task"]):
        return run_metrics(benchmark, BUDGET_OPTIMIZERS, BUDGET_SEEDS)
    return expand(f"{BUDGET_RUN}/metrics.json", benchmark=benchmark, optimizer=BUDGET_OPTIMIZERS, epochs=epochs,
                  seed=BUDGET_SEEDS)


def budget_experiment_metrics():
    return [f for b, grid in BUDGET_GRID.items() for e in grid for f in budget_run_metrics(b, e)]


def ablation_metrics(benchmark):
    return run_metrics(benchmark, ABLATION_ORDER, ABLATION_SEEDS)


def powerprop_results():
    return expand(f"{PP_DIR}/runs/{{pp_method}}/results.json", pp_method=PP_METHODS)


def training_outputs():
    """Every file the training rules write (DVC stage `train`), each one a target of `rule all`.

    Each run's metrics.json and checkpoints (headline, ablation and noise-floor controls), the sweep runs and selection,
    the budget rule's runs and choice, the forgetting-against-budget runs, and the Powerprop
    selections, results, checkpoints and equivalence study. Why targets and not only inputs of the
    summaries: Snakemake reruns a job whose output is missing only if something it must build needs
    that output, so a run deleted under a summary that still exists (a killed job's cleanup) would
    never be rebuilt (issue 16).
    """
    files = all_benchmarks(lambda b: run_metrics(b) + run_checkpoints(b) + ablation_metrics(b)
                           + run_checkpoints(b, ABLATION_ORDER, ABLATION_SEEDS)
                           + run_metrics(b, list(CONTROLS)) + run_checkpoints(b, list(CONTROLS)))
    files += sweep_metrics() + (["data/sweep/selected.json"] if SWEEP else [])
    files += knob_metrics() + (["data/knobs/selected.json"] if KNOBS else [])
    files += budget_validation_metrics() + budget_experiment_metrics()
    files += ["data/budget/selected.json"] if BUDGET else []
    if POWERPROP:
        files += powerprop_results() + expand(f"{PP_DIR}/sweep/{{pp_method}}.json", pp_method=PP_METHODS)
        files += expand(f"{PP_DIR}/runs/{{pp_method}}/seed{{seed}}.pt", pp_method=PP_METHODS, seed=PP_SEEDS)
        files.append(f"{PP_DIR}/equivalence.json")
    return list(dict.fromkeys(files))  # the ablation's base runs are headline runs: listed once


def all_outputs():
    """Every output of the config, data and training runs included (``training_outputs``): deleting
    any of them makes `snakemake` rebuild it and what depends on it (tests/test_targets.py). The
    figures are those their figure_rule declares wanted (``FIGURE_TARGETS``)."""
    outputs = [*DATA.values(), *training_outputs()]
    outputs += expand("data/summary/{benchmark}.json", benchmark=BENCHMARKS)
    if SWEEP:
        outputs.append("data/sweep/selected.json")
    if KNOBS:
        outputs.append("data/knobs/selected.json")
    if ABLATION:
        outputs += ["data/summary/shampoo_ablation.json", "data/summary/shampoo_ablation.md"]
    if BUDGET:
        outputs += ["data/budget/selected.json", "data/summary/budget_sensitivity.json"]
    if POWERPROP:
        outputs += ["data/summary/powerprop.json", f"{PP_DIR}/equivalence.json"]
    outputs.append("data/metrics/headline.json")  # versioned by DVC, with the curves (versioning.smk)
    outputs += expand("data/metrics/curves/{benchmark}/{optimizer}.csv", benchmark=BENCHMARKS, optimizer=OPTIMIZERS)
    outputs += all_benchmarks(probe_outputs)
    outputs += expand("data/summary/probes_{benchmark}.json", benchmark=BENCHMARKS)
    outputs.append("data/summary/weight_distance.json")  # claim 9, weights
    outputs.append("data/summary/solution_distance.json")  # claim 9: function, weights, representation, with floors
    outputs += FIGURE_TARGETS
    if PAPER:
        outputs += ["paper/audit.md", "data/audit.json", "paper/verdicts.json", "paper/build/paper.html",
                    "paper/build/explore.ipynb", "paper/build/explore.html"]
    return list(dict.fromkeys(outputs))


# ---- the figure rules: one template, figure_rule, called once per figure by the rules files. Each
# figure's rule, script and library function share one name: figure_rule("continual", "final_accuracy",
# ...) runs workflow/scripts/continual/final_accuracy.py, which calls optbias.continual.figures.final_accuracy
# (tests/test_layout.py). A Python template rather than rule inheritance (`use rule`), because each
# figure runs a script of its own, and `script` is not among what a `with` block may change.
FIGURE_TARGETS = []  # the PDF and PNG of every figure the config wants, in order of definition (all_outputs)


def figure_rule(stage, name, doc, figure, inputs, caption, category, params, more_code=(), when=True):
    """Define figure rule ``name`` of ``stage``. From ``inputs`` (name -> files or an input function)
    and ``params`` (order, title) it draws figures/<figure>.pdf (in the report with ``caption`` and
    ``category``) and its PNG twin, logging to logs/figures/<figure>.log; its code inputs are
    optbias.<stage>.figures, ``more_code`` and plotting. ``figure`` may hold {benchmark}. The figure
    (one per benchmark, with {benchmark}) is a target of `all` when ``when`` holds: when the config
    has the blocks it draws."""
    rule:
        name: name
        input:
            **inputs,
            code=code(f"{stage}/figures.py", *more_code, "plotting.py"),
        output:
            pdf=report(f"figures/{figure}.pdf", caption=caption, category=category),
            png=f"figures/{figure}.png",
        params:
            **params,
        message:
            "figure {output.pdf}"
        log:
            f"logs/figures/{figure}.log",
        conda:
            ENV
        script:
            f"../scripts/{stage}/{name}.py"
    workflow.get_rule(name).docstring = doc  # a rule block takes only a literal docstring
    if when:
        FIGURE_TARGETS.extend(f"figures/{stem}.{ext}" for stem in expand(figure, benchmark=BENCHMARKS)
                              for ext in ("pdf", "png"))


# ---- the paper and the claims audit (workflow/rules/paper.smk)


def repo_path(path):
    """A path of the paper block: absolute, or relative to the repository (the Snakefile's folder)."""
    return path if os.path.isabs(path) else os.path.join(workflow.basedir, path)


def paper_files(key):
    """The paper block's ``claims`` or ``source``: one path or a list of paths, each resolved by repo_path."""
    value = PAPER[key]
    return [repo_path(p) for p in ([value] if isinstance(value, str) else value)]


def paper_claims():
    return _claims.load_claims_files(paper_files("claims"))


def claimed_rule_outputs():
    """rule -> output patterns, for the rules the claims name (fails on a rule that does not exist)."""
    known = {r.name: [str(o) for o in r.output] for r in workflow.rules}
    claims = paper_claims()
    _claims.check_provenance(claims, known)
    return {c["rule"]: known[c["rule"]] for c in claims}


def audit_inputs(wildcards):
    """The claims file, every claim's evidence and every figure a claim cites."""
    claimed_rule_outputs()  # raises ClaimError naming the claim before any job runs
    claims = paper_claims()
    return {"claims": paper_files("claims"),
            "evidence": sorted({c["output"] for c in claims}),
            "figures": sorted({c["figure"] for c in claims if c["figure"].startswith("figures/")})}


def other_datasets():
    """paper.datasets without this run's own dataset (display name -> verdicts file): a Fashion-MNIST
    run, whose config extends config.yaml's paper block, does not table itself against its own."""
    return _render.other_datasets(PAPER.get("datasets", {}), DATASET)


def paper_inputs(wildcards):
    source = paper_files("source")
    variables = repo_path(PAPER["variables"])
    text = _render.read_source(source)
    return {
        "source": source,
        "variables": variables,
        "audit_json": "data/audit.json",
        "audit_md": "paper/audit.md",
        "notebook": "paper/build/explore.html",  # the page links to it
        "evidence": sorted(set(_render.variable_outputs(_render.load_variables(variables)))
                           | set(_render.inline_outputs(text))),
        "figures": _render.figure_paths(text),
        "datasets": [repo_path(path) for path in other_datasets().values()],  # other runs' verdicts
    }


# ---- the explore notebook (rule explore in workflow/rules/paper.smk)
# Relative to the working directory, as code() is: the notebook is code, an input whose content counts.
NOTEBOOK = os.path.relpath(os.path.join(workflow.basedir, "workflow", "notebooks", "explore.py"))


def explore_parameters():
    """The notebook's parameters: the config's paper.explore (benchmark, a, b, seed; checked by
    config.check), and root: the job runs it in the working directory."""
    return {**PAPER["explore"], "root": "."}


def explore_inputs(wildcards):
    """What the notebook reads: the benchmark's summary, probe summary and headline figures, the
    loss-curve seed's runs of every optimizer, and the audit."""
    p = explore_parameters()
    return {
        "summary": f"data/summary/{p['benchmark']}.json",
        "probes": f"data/summary/probes_{p['benchmark']}.json",
        "audit": "data/audit.json",
        "figures": _explore.HEADLINE_FIGURES[p["benchmark"]],
        "runs": expand(f"{RUN}/metrics.json", benchmark=p["benchmark"], optimizer=OPTIMIZERS, seed=p["seed"]),
    }
