if SWEEP:

    rule sweep_train:
        """Every learning-rate candidate of one benchmark, one after another in one process.

        Each run uses the validation seed and a held-out split and records a divergence instead of
        failing. The longest job of the DAG, so it starts first (priority).
        """
        input:
            data=f"data/raw/{DATASET}.pt",
            manifest=f"data/raw/{DATASET}.pt.manifest.json",
        output:
            metrics=sweep_metrics(["{benchmark}"]),  # the wildcard stays a wildcard
        params:
            specs=lambda w: quoted_json([sweep_spec(w.benchmark, name, lr) for name, lr in sweep_candidates()]),
        threads: config["train"].get("threads", 1)
        priority: lambda w: sum(expected_cost(w.benchmark, name, 1) for name, _ in sweep_candidates())
        log:
            "logs/sweep/{benchmark}.log",
        benchmark:
            "benchmarks/sweep/{benchmark}.tsv"
        conda:
            ENV
        shell:
            "optbias train --spec {params.specs} --data {input.data} --metrics {output.metrics} "
            "> {log} 2>&1"


rule sweep_select:
    """Pick each swept optimizer's learning rate by held-out accuracy on the task being learned."""
    input:
        metrics=sweep_metrics(),
    output:
        "data/sweep/selected.json",
    params:
        config_lrs=quoted_json({name: ENTRIES[name]["lr"] for name in SWEEP.get("lrs", {})}),
    log:
        "logs/sweep/select.log",
    conda:
        ENV
    shell:
        "optbias sweep-select --metrics {input.metrics} --config-lrs {params.config_lrs} "
        "--output {output} > {log} 2>&1"


rule figure_sweep:
    """Validation score against learning rate, per swept optimizer and benchmark."""
    input:
        "data/sweep/selected.json",
    output:
        pdf=report("figures/lr_sweep.pdf", caption="../report/lr_sweep.rst", category="Protocol"),
        png="figures/lr_sweep.png",
    log:
        "logs/figures/lr_sweep.log",
    conda:
        ENV
    shell:
        "optbias figure lr-sweep --inputs {input} --out {output} "
        "--title 'Learning-rate sweep (validation seed, held-out split)' > {log} 2>&1"
