# Continual learning (src/optbias/continual/): the learning-rate sweep, training every optimizer on
# every benchmark, the Shampoo mechanism ablation, the summaries and their figures.
#
# A training job trains every seed of one (benchmark, optimizer) in one process; its params are
# the full run specs, so it reruns exactly when a spec changes. The summary and figure jobs take
# their library code as an input (`code(...)`), so editing it reruns them, never the training.


rule train:
    """Train every seed of one (benchmark, optimizer): a checkpoint per task and metrics.json with R.

    The seeds run one after another in one process: each run seeds itself, so its results equal
    those of a process of its own, and the job pays torch's start-up (~4 s) once, not per seed.
    """
    input:
        **DATA,
    output:
        metrics=expand(f"{RUN}/metrics.json", seed=SEEDS, allow_missing=True),
        checkpoints=directory(expand(f"{RUN}/checkpoints", seed=SEEDS, allow_missing=True)),
    params:
        specs=lambda w: [run_spec(w.benchmark, w.optimizer, seed) for seed in SEEDS],
    wildcard_constraints:
        optimizer=_alternatives(OPTIMIZERS),
    message:
        f"train {{wildcards.benchmark}}/{{wildcards.optimizer}}: {len(SEEDS)} seeds"
    threads: THREADS
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(SEEDS))
    resources:
        gpu=1 if config["train"]["device"].startswith("cuda") else 0,
    log:
        "logs/train/{benchmark}/{optimizer}.log",
    benchmark:
        "benchmarks/train/{benchmark}/{optimizer}.tsv"
    conda:
        ENV
    script:
        "../scripts/continual/train.py"


use rule train as train_ablation with:
    output:
        metrics=expand(f"{RUN}/metrics.json", seed=ABLATION_SEEDS, allow_missing=True),
        checkpoints=directory(expand(f"{RUN}/checkpoints", seed=ABLATION_SEEDS, allow_missing=True)),
    params:
        specs=lambda w: [run_spec(w.benchmark, w.optimizer, seed) for seed in ABLATION_SEEDS],
    wildcard_constraints:
        optimizer=_alternatives(ABLATION.get("variants", {})),
    message:
        f"train ablation {{wildcards.benchmark}}/{{wildcards.optimizer}}: {len(ABLATION_SEEDS)} seeds"
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(ABLATION_SEEDS))


rule summarize:
    """Per-optimizer mean and bootstrap 95% CI over seeds of every scalar metric."""
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


if SWEEP:  # without a sweep block, the rule has no outputs to name its wildcard

    rule sweep_train:
        """Every learning-rate candidate of one benchmark, one after another in one process.

        Each run uses the validation seed and a held-out split and records a divergence instead of
        failing. The longest job of the DAG, so it starts first (priority).
        """
        input:
            **DATA,
        output:
            metrics=sweep_metrics(["{benchmark}"]),  # the wildcard stays a wildcard
        params:
            specs=lambda w: [sweep_spec(w.benchmark, name, lr) for name, lr in sweep_candidates()],
        message:
            f"learning-rate sweep {{wildcards.benchmark}}: {len(sweep_candidates())} candidates"
        threads: THREADS
        priority: lambda w: sum(expected_cost(w.benchmark, name, 1) for name, _ in sweep_candidates())
        log:
            "logs/sweep/{benchmark}.log",
        benchmark:
            "benchmarks/sweep/{benchmark}.tsv"
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


# ---- figures: rule, script and function share one name (optbias.continual.figures.<name>)


rule final_accuracy:
    """Figure, the paper's left panel: final accuracy on each digit pair, per optimizer."""
    input:
        metrics=run_metrics("class_incremental"),
        code=code("continual/figures.py", "plotting.py"),
    output:
        pdf=report("figures/class_incremental_final_accuracy.pdf",
                   caption="../report/class_incremental_final_accuracy.rst", category="Continual learning"),
        png="figures/class_incremental_final_accuracy.png",
    params:
        order=OPTIMIZERS,
        title="Class-incremental MNIST: accuracy of the final model per pair",
    message:
        "figure {output.pdf}"
    log:
        "logs/figures/class_incremental_final_accuracy.log",
    conda:
        ENV
    script:
        "../scripts/continual/final_accuracy.py"


rule first_task_accuracy:
    """Figure, permuted MNIST: accuracy on task 1 after each task, per optimizer."""
    input:
        metrics=run_metrics("permuted"),
        code=code("continual/figures.py", "plotting.py"),
    output:
        pdf=report("figures/permuted_first_task_accuracy.pdf",
                   caption="../report/permuted_first_task_accuracy.rst", category="Continual learning"),
        png="figures/permuted_first_task_accuracy.png",
    params:
        order=OPTIMIZERS,
        title="Permuted MNIST: accuracy on task 1",
    message:
        "figure {output.pdf}"
    log:
        "logs/figures/permuted_first_task_accuracy.log",
    conda:
        ENV
    script:
        "../scripts/continual/first_task_accuracy.py"


rule accuracy_matrices:
    """Figure: heatmaps of the accuracy matrix R (mean over seeds), one per optimizer."""
    input:
        metrics=lambda w: run_metrics(w.benchmark),
        code=code("continual/figures.py", "plotting.py"),
    output:
        pdf=report("figures/accuracy_matrices_{benchmark}.pdf",
                   caption="../report/accuracy_matrices.rst", category="Continual learning"),
        png="figures/accuracy_matrices_{benchmark}.png",
    params:
        order=OPTIMIZERS,
        title=lambda w: f"Accuracy matrix, {w.benchmark}",
    message:
        "figure {output.pdf}"
    log:
        "logs/figures/accuracy_matrices_{benchmark}.log",
    conda:
        ENV
    script:
        "../scripts/continual/accuracy_matrices.py"


rule lr_sweep:
    """Figure: validation score against learning rate, per swept optimizer and benchmark."""
    input:
        selected="data/sweep/selected.json",
        code=code("continual/figures.py", "plotting.py"),
    output:
        pdf=report("figures/lr_sweep.pdf", caption="../report/lr_sweep.rst", category="Protocol"),
        png="figures/lr_sweep.png",
    params:
        title="Learning-rate sweep (validation seed, held-out split)",
    message:
        "figure {output.pdf}"
    log:
        "logs/figures/lr_sweep.log",
    conda:
        ENV
    script:
        "../scripts/continual/lr_sweep.py"


rule shampoo_ablation:
    """Figure: average forgetting and accuracy per Shampoo variant, per benchmark."""
    input:
        summary="data/summary/shampoo_ablation.json",
        code=code("continual/figures.py", "plotting.py"),
    output:
        pdf=report("figures/shampoo_ablation.pdf", caption="../report/shampoo_ablation.rst", category="Shampoo"),
        png="figures/shampoo_ablation.png",
    params:
        title="Which Shampoo ingredient reduces forgetting?",
    message:
        "figure {output.pdf}"
    log:
        "logs/figures/shampoo_ablation.log",
    conda:
        ENV
    script:
        "../scripts/continual/shampoo_ablation.py"
