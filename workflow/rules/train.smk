rule train:
    """Train one (benchmark, optimizer, seed): a checkpoint per task and metrics.json with R."""
    input:
        data=f"data/raw/{DATASET}.pt",
        manifest=f"data/raw/{DATASET}.pt.manifest.json",
    output:
        metrics=f"{RUN}/metrics.json",
        checkpoints=directory(f"{RUN}/checkpoints"),
    params:
        spec=lambda w: quoted_json(train_spec(w)),
    threads: config["train"].get("threads", 1)
    resources:
        gpu=1 if config["train"].get("device", "auto").startswith("cuda") else 0,
    log:
        "logs/train/{benchmark}/{optimizer}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{benchmark}/{optimizer}/seed{seed}.tsv"
    conda:
        ENV
    shell:
        "optbias train --spec {params.spec} --data {input.data} --metrics {output.metrics} "
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
