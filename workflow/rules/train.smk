rule train:
    """Train every seed of one (benchmark, optimizer): a checkpoint per task and metrics.json with R.

    The seeds run one after another in one process: each run seeds itself, so its results equal
    those of a process of its own, and the job pays torch's start-up (~4 s) once, not per seed.
    """
    input:
        data=f"data/raw/{DATASET}.pt",
        manifest=f"data/raw/{DATASET}.pt.manifest.json",
    output:
        metrics=expand(f"{RUN}/metrics.json", seed=SEEDS, allow_missing=True),
        checkpoints=directory(expand(f"{RUN}/checkpoints", seed=SEEDS, allow_missing=True)),
    params:
        specs=lambda w: quoted_json([run_spec(w.benchmark, w.optimizer, seed) for seed in SEEDS]),
    wildcard_constraints:
        optimizer=_alternatives(OPTIMIZERS),
    threads: config["train"].get("threads", 1)
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(SEEDS))
    resources:
        gpu=1 if config["train"].get("device", "auto").startswith("cuda") else 0,
    log:
        "logs/train/{benchmark}/{optimizer}.log",
    benchmark:
        "benchmarks/train/{benchmark}/{optimizer}.tsv"
    conda:
        ENV
    shell:
        "optbias train --spec {params.specs} --data {input.data} --metrics {output.metrics} "
        "--checkpoints {output.checkpoints} > {log} 2>&1"


rule summarize:
    """Per-optimizer mean and bootstrap 95% CI over seeds of every scalar metric."""
    input:
        metrics=lambda w: run_metrics(w.benchmark),
    output:
        "data/summary/{benchmark}.json",
    params:
        order=OPTIMIZERS,
    log:
        "logs/summarize/{benchmark}.log",
    conda:
        ENV
    shell:
        "optbias summarize --metrics {input.metrics} --order {params.order} --output {output} > {log} 2>&1"
