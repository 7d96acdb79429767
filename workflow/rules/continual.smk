# Continual learning (src/optbias/continual/): the learning-rate sweep, training every optimizer on
# every benchmark, the Shampoo mechanism ablation, the summaries and their figures.
#
# A training job trains every seed of one (benchmark, optimizer) in one process, or one seed with
# `seed_jobs: separate` (common.smk); its params are the full run specs of every seed either way,
# so it reruns exactly when a spec changes. Its param `code` is the hash of the training code (the
# import closure of optbias.continual.train: TRAINING_CODE, common.smk), so editing a module training
# imports reruns every training job, sweep, knob and budget runs included, and nothing else does.
# The summary and figure jobs take their library code as an input (`code(...)`), so editing it
# reruns them, never the training.


rule train:
    """Train every seed of one (benchmark, optimizer): a checkpoint per task and metrics.json with R.

    The seeds run one after another in one process: each run seeds itself, so its results equal
    those of a process of its own, and the job pays torch's start-up (~4 s) once, not per seed.
    With `seed_jobs: separate` (the SLURM profile) each seed is a job of its own instead, here and
    in every other training rule; the outputs are the same.
    """
    input:
        **DATA,
    output:
        metrics=seed_outputs(f"{RUN}/metrics.json", SEEDS),
        checkpoints=directory(seed_outputs(f"{RUN}/checkpoints", SEEDS)),
    params:
        code=TRAINING_CODE,
        specs=lambda w: [run_spec(w.benchmark, w.optimizer, seed) for seed in SEEDS],
    wildcard_constraints:
        optimizer=_alternatives(OPTIMIZERS),
    message:
        f"train {{wildcards.benchmark}}/{{wildcards.optimizer}}: {seeds_message(SEEDS)}"
    threads: THREADS
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(job_seeds(w, SEEDS)))
    resources:
        gpu=TRAIN_GPUS,
    log:
        per_seed("logs/train/{benchmark}/{optimizer}", ".log"),
    benchmark:
        per_seed("benchmarks/train/{benchmark}/{optimizer}", ".tsv")
    conda:
        ENV
    script:
        "../scripts/continual/train.py"


use rule train as train_ablation with:
    output:
        metrics=seed_outputs(f"{RUN}/metrics.json", ABLATION_SEEDS),
        checkpoints=directory(seed_outputs(f"{RUN}/checkpoints", ABLATION_SEEDS)),
    params:
        code=TRAINING_CODE,
        specs=lambda w: [run_spec(w.benchmark, w.optimizer, seed) for seed in ABLATION_SEEDS],
    wildcard_constraints:
        optimizer=_alternatives(ABLATION.get("variants", {})),
    message:
        f"train ablation {{wildcards.benchmark}}/{{wildcards.optimizer}}: {seeds_message(ABLATION_SEEDS)}"
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(job_seeds(w, ABLATION_SEEDS)))


use rule train as train_control with:
    # Claim 9's noise floor (config `noise_floor`): headline optimizer <name> again as <name>-reorder, on
    # every seed, from the same initial weights with another batch order (train.batch_order). Its
    # checkpoints feed rule solution_distance (probes.smk).
    wildcard_constraints:
        optimizer=_alternatives(CONTROLS),
    message:
        f"train noise-floor control {{wildcards.benchmark}}/{{wildcards.optimizer}}: {seeds_message(SEEDS)}"


rule summarize:
    """Per-optimizer mean and Student-t 95% CI over seeds of every scalar metric."""
    input:
        metrics=lambda w: run_metrics(w.benchmark),
        code=code("continual/summary.py", "continual/metrics.py", "stats.py"),
    output:
        "data/summary/{benchmark}.json",
    params:
        order=OPTIMIZERS,
    message:
        "summarize {wildcards.benchmark}"
    log:
        "logs/summarize/{benchmark}.log",
    conda:
        ENV
    script:
        "../scripts/continual/summarize.py"


rule sweep_train:
    """One learning-rate candidate of one (benchmark, optimizer) on every validation seed, in one process
    (or on one seed per job: seed_jobs).

    Each run uses a validation seed and a held-out split and records a divergence instead of failing.
    """
    input:
        **DATA,
    output:
        metrics=seed_outputs(f"{SWEEP_RUN}/metrics.json", SWEEP_SEEDS),
    params:
        code=TRAINING_CODE,
        specs=lambda w: [sweep_spec(w.benchmark, w.optimizer, w.lr, seed) for seed in SWEEP_SEEDS],
    wildcard_constraints:
        optimizer=_alternatives(SWEEP.get("lrs", {})),
    message:
        f"learning-rate sweep {{wildcards.benchmark}}/{{wildcards.optimizer}} lr {{wildcards.lr}}: {seeds_message(SWEEP_SEEDS, 'validation seeds')}"
    threads: THREADS
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(job_seeds(w, SWEEP_SEEDS)))
    resources:
        gpu=TRAIN_GPUS,
    log:
        per_seed("logs/sweep/{benchmark}/{optimizer}/lr{lr}", ".log"),
    benchmark:
        per_seed("benchmarks/sweep/{benchmark}/{optimizer}/lr{lr}", ".tsv")
    conda:
        ENV
    script:
        "../scripts/continual/train.py"


rule sweep_select:
    """Pick each swept optimizer's learning rate by held-out accuracy on the task being learned."""
    input:
        metrics=sweep_metrics(),
        code=code("continual/sweep.py"),
    output:
        "data/sweep/selected.json",
    params:
        config_lrs={name: ENTRIES[name]["lr"] for name in SWEEP.get("lrs", {})},
    message:
        "select learning rates"
    log:
        "logs/sweep/select.log",
    conda:
        ENV
    script:
        "../scripts/continual/sweep_select.py"


rule knob_train:
    """One candidate value of a knob (the retention rule, optbias.continual.knobs) of one (benchmark,
    optimizer) on every validation seed of the sweep, with its held-out split; divergence recorded."""
    input:
        **DATA,
    output:
        metrics=seed_outputs(f"{KNOB_RUN}/metrics.json", SWEEP_SEEDS),
    params:
        code=TRAINING_CODE,
        specs=lambda w: [knob_spec(w.benchmark, w.optimizer, w.value, seed) for seed in SWEEP_SEEDS],
    wildcard_constraints:
        optimizer=_alternatives(KNOBS),
    message:
        f"retention rule {{wildcards.benchmark}}/{{wildcards.optimizer}} at {{wildcards.value}}: {seeds_message(SWEEP_SEEDS, 'validation seeds')}"
    threads: THREADS
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(job_seeds(w, SWEEP_SEEDS)))
    resources:
        gpu=TRAIN_GPUS,
    log:
        per_seed("logs/knobs/{benchmark}/{optimizer}/{value}", ".log"),
    benchmark:
        per_seed("benchmarks/knobs/{benchmark}/{optimizer}/{value}", ".tsv")
    conda:
        ENV
    script:
        "../scripts/continual/train.py"


rule knob_select:
    """Pick each knob by held-out average accuracy after the last task (the retention rule), and score
    the learning-rate sweep's runs by the same rule (the second protocol)."""
    input:
        metrics=knob_metrics(),
        sweep=sweep_metrics(),
        selected_lrs="data/sweep/selected.json",
        code=code("continual/knobs.py", "continual/summary.py", "continual/metrics.py"),
    output:
        "data/knobs/selected.json",
    params:
        knobs=KNOBS,
        config_values={name: ENTRIES[name][knob["option"]] for name, knob in KNOBS.items()},
    message:
        "select the knobs by the retention rule"
    log:
        "logs/knobs/select.log",
    conda:
        ENV
    script:
        "../scripts/continual/knob_select.py"


rule summarize_ablation:
    """The Shampoo mechanism ablation: every variant's forgetting and accuracy, with CIs."""
    input:
        metrics=all_benchmarks(ablation_metrics),
        code=code("continual/summary.py", "continual/metrics.py", "stats.py"),
    output:
        json="data/summary/shampoo_ablation.json",
        table="data/summary/shampoo_ablation.md",
    params:
        order=ABLATION_ORDER,
    message:
        "summarize the Shampoo ablation"
    log:
        "logs/summarize/shampoo_ablation.log",
    conda:
        ENV
    script:
        "../scripts/continual/summarize_ablation.py"


# ---- the training budget (optbias.continual.budget): the rule that chooses the epochs per task, and
# forgetting against the budget. Divergence is recorded, never fatal, in both.


rule budget_validation:
    """The budget rule's runs: one (benchmark, headline optimizer, budget) on every validation seed,
    with a held-out part of every task's training split."""
    input:
        **DATA,
    output:
        metrics=seed_outputs(f"{BUDGET_VAL_RUN}/metrics.json", BUDGET_VAL_SEEDS),
    params:
        code=TRAINING_CODE,
        specs=lambda w: [budget_spec(w.benchmark, w.optimizer, w.epochs, seed, validation=True)
                         for seed in BUDGET_VAL_SEEDS],
    wildcard_constraints:
        optimizer=_alternatives(BUDGET_OPTIMIZERS),
    message:
        f"budget rule {{wildcards.benchmark}}/{{wildcards.optimizer}} at {{wildcards.epochs}} epochs per task: {seeds_message(BUDGET_VAL_SEEDS, 'validation seeds')}"
    threads: THREADS
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(job_seeds(w, BUDGET_VAL_SEEDS)), w.epochs)
    resources:
        gpu=TRAIN_GPUS,
    log:
        per_seed("logs/budget/validation/{benchmark}/{optimizer}/epochs{epochs}", ".log"),
    benchmark:
        per_seed("benchmarks/budget/validation/{benchmark}/{optimizer}/epochs{epochs}", ".tsv")
    conda:
        ENV
    script:
        "../scripts/continual/train.py"


rule budget_select:
    """Apply the budget rule: the smallest budget of each grid at which every headline optimizer
    reaches the declared held-out learning accuracy; record every candidate and `config_matches`."""
    input:
        metrics=budget_validation_metrics(),
        code=code("continual/budget.py", "continual/summary.py"),
    output:
        "data/budget/selected.json",
    params:
        criteria=BUDGET.get("benchmarks", {}),
        config_epochs={b: config["benchmarks"][b]["epochs_per_task"] for b in BENCHMARKS},
        order=BUDGET_OPTIMIZERS,
    message:
        "select the budget (epochs per task)"
    log:
        "logs/budget/select.log",
    conda:
        ENV
    script:
        "../scripts/continual/budget_select.py"


rule budget_train:
    """The forgetting-against-budget experiment: one (benchmark, headline optimizer, budget) on the
    experiment's seeds (no checkpoints). At the configured budget the headline runs serve instead."""
    input:
        **DATA,
    output:
        metrics=seed_outputs(f"{BUDGET_RUN}/metrics.json", BUDGET_SEEDS),
    params:
        code=TRAINING_CODE,
        specs=lambda w: [budget_spec(w.benchmark, w.optimizer, w.epochs, seed, validation=False)
                         for seed in BUDGET_SEEDS],
    wildcard_constraints:
        optimizer=_alternatives(BUDGET_OPTIMIZERS),
    message:
        f"budget experiment {{wildcards.benchmark}}/{{wildcards.optimizer}} at {{wildcards.epochs}} epochs per task: {seeds_message(BUDGET_SEEDS)}"
    threads: THREADS
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(job_seeds(w, BUDGET_SEEDS)), w.epochs)
    resources:
        gpu=TRAIN_GPUS,
    log:
        per_seed("logs/budget/runs/{benchmark}/{optimizer}/epochs{epochs}", ".log"),
    benchmark:
        per_seed("benchmarks/budget/runs/{benchmark}/{optimizer}/epochs{epochs}", ".tsv")
    conda:
        ENV
    script:
        "../scripts/continual/train.py"


rule summarize_budget:
    """Forgetting against the budget: per benchmark, budget and optimizer, mean and 95% CI over seeds
    of average forgetting, accuracy on old tasks, learning accuracy and average accuracy."""
    input:
        metrics=budget_experiment_metrics(),
        selected="data/budget/selected.json",
        code=code("continual/budget.py", "continual/summary.py", "continual/metrics.py", "stats.py"),
    output:
        "data/summary/budget_sensitivity.json",
    params:
        order=BUDGET_OPTIMIZERS,
    message:
        "summarize forgetting against the budget"
    log:
        "logs/summarize/budget_sensitivity.log",
    conda:
        ENV
    script:
        "../scripts/continual/summarize_budget.py"


# ---- figures: figure_rule (common.smk), one call per figure; rule, script and function share one name
# (optbias.continual.figures.<name>)


figure_rule(
    "continual", "final_accuracy",
    "Figure, the paper's left panel: final accuracy on each digit pair, per optimizer.",
    figure="class_incremental_final_accuracy",
    inputs={"metrics": run_metrics("class_incremental")},
    caption="../report/class_incremental_final_accuracy.rst", category="Continual learning",
    params={"order": OPTIMIZERS, "title": f"Class-incremental {DATASET_NAME}: accuracy of the final model per pair"},
    when="class_incremental" in BENCHMARKS,
)

figure_rule(
    "continual", "first_task_accuracy",
    "Figure, permuted MNIST: accuracy on task 1 after each task, per optimizer.",
    figure="permuted_first_task_accuracy",
    inputs={"metrics": run_metrics("permuted")},
    caption="../report/permuted_first_task_accuracy.rst", category="Continual learning",
    params={"order": OPTIMIZERS, "title": f"Permuted {DATASET_NAME}: accuracy on task 1"},
    when="permuted" in BENCHMARKS,
)

figure_rule(
    "continual", "accuracy_matrices",
    "Figure: heatmaps of the accuracy matrix R (mean over seeds), one per optimizer.",
    figure="accuracy_matrices_{benchmark}",
    inputs={"metrics": lambda w: run_metrics(w.benchmark)},
    caption="../report/accuracy_matrices.rst", category="Continual learning",
    params={"order": OPTIMIZERS, "title": lambda w: f"Accuracy matrix, {w.benchmark}"},
)

figure_rule(
    "continual", "lr_sweep",
    "Figure: validation score against learning rate, per swept optimizer and benchmark.",
    figure="lr_sweep",
    inputs={"selected": "data/sweep/selected.json"},
    caption="../report/lr_sweep.rst", category="Protocol",
    params={"title": "Learning-rate sweep (validation seeds, held-out split)"},
    when=bool(SWEEP),
)

figure_rule(
    "continual", "budget_sensitivity",
    "Figure: forgetting, accuracy on old tasks and learning accuracy against epochs per task.",
    figure="budget_sensitivity",
    inputs={"summary": "data/summary/budget_sensitivity.json"},
    caption="../report/budget_sensitivity.rst", category="Protocol",
    params={"title": "Forgetting against the training budget"},
    when=bool(BUDGET),
)

figure_rule(
    "continual", "shampoo_ablation",
    "Figure: average forgetting and accuracy per Shampoo variant, per benchmark.",
    figure="shampoo_ablation",
    inputs={"summary": "data/summary/shampoo_ablation.json"},
    caption="../report/shampoo_ablation.rst", category="Shampoo",
    params={"title": "Which Shampoo ingredient reduces forgetting?"},
    when=bool(ABLATION),
)

figure_rule(
    "continual", "retention_plasticity",
    "Figure (issue 33): forgetting against learning accuracy, class-incremental average accuracy, and the retention rule's knob sweeps.",
    figure="retention_plasticity",
    inputs={"summaries": expand("data/summary/{benchmark}.json", benchmark=BENCHMARKS),
            **({"knobs": "data/knobs/selected.json"} if KNOBS else {})},
    caption="../report/retention_plasticity.rst", category="Designing an optimizer",
    params={"order": OPTIMIZERS, "benchmarks": BENCHMARKS,
            "title": f"What each optimizer keeps against what it learns ({DATASET_NAME})"},
    when=bool(KNOBS),
)
