use rule train as train_ablation with:
    output:
        metrics=expand(f"{RUN}/metrics.json", seed=ABLATION_SEEDS, allow_missing=True),
        checkpoints=directory(expand(f"{RUN}/checkpoints", seed=ABLATION_SEEDS, allow_missing=True)),
    params:
        specs=lambda w: quoted_json([run_spec(w.benchmark, w.optimizer, seed) for seed in ABLATION_SEEDS]),
    wildcard_constraints:
        optimizer=_alternatives(ABLATION.get("variants", {})) if ABLATION else "(?!)",
    priority: lambda w: expected_cost(w.benchmark, w.optimizer, len(ABLATION_SEEDS))


rule summarize_ablation:
    """The Shampoo mechanism ablation: every variant's forgetting and accuracy, with CIs."""
    input:
        metrics=[m for b in BENCHMARKS for m in ablation_metrics(b)],
    output:
        json="data/summary/shampoo_ablation.json",
        table="data/summary/shampoo_ablation.md",
    params:
        order=ABLATION_ORDER,
    log:
        "logs/summarize/shampoo_ablation.log",
    conda:
        ENV
    shell:
        "optbias ablation-summary --metrics {input.metrics} --order {params.order} "
        "--output {output.json} --table {output.table} > {log} 2>&1"


rule figure_ablation:
    """Average forgetting and accuracy per Shampoo variant, per benchmark."""
    input:
        "data/summary/shampoo_ablation.json",
    output:
        pdf=report("figures/shampoo_ablation.pdf", caption="../report/shampoo_ablation.rst", category="Shampoo"),
        png="figures/shampoo_ablation.png",
    log:
        "logs/figures/shampoo_ablation.log",
    conda:
        ENV
    shell:
        "optbias figure shampoo-ablation --inputs {input} --out {output} "
        "--title 'Which Shampoo ingredient reduces forgetting?' > {log} 2>&1"
