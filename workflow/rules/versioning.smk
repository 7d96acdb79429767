# Versioning with DVC (src/optbias/versioning/, dvc.yaml, docs/dvc.md). Snakemake owns execution:
# every DVC stage runs `snakemake <one target rule below>`, and the stages' outputs are whole
# directories that do not overlap. tests/test_dvc.py checks that every output of this DAG lies
# under one DVC output.


rule track:
    """The small files DVC versions in git: headline metrics (dvc metrics) and curves (dvc plots)."""
    input:
        summaries=expand("data/summary/{benchmark}.json", benchmark=BENCHMARKS),
        metrics=all_benchmarks(run_metrics),
        code=code("versioning/tracking.py"),
    output:
        headline="data/metrics/headline.json",
        curves=expand("data/metrics/curves/{benchmark}/{optimizer}.csv", benchmark=BENCHMARKS, optimizer=OPTIMIZERS),
    message:
        "DVC metrics and curves"
    log:
        "logs/track.log",
    conda:
        ENV
    script:
        "../scripts/versioning/track.py"


rule dvc_data:
    """DVC stage `data`: the frozen dataset (data/raw)."""
    localrule: True
    input:
        **DATA,


rule dvc_train:
    """DVC stage `train`: every training run, checkpoints included (data/runs, data/sweep, data/budget, data/powerprop)."""
    localrule: True
    input:
        all_benchmarks(lambda b: run_metrics(b) + ablation_metrics(b)),
        sweep_metrics(),
        ["data/sweep/selected.json"] if SWEEP else [],
        budget_validation_metrics() + budget_experiment_metrics(),
        ["data/budget/selected.json"] if BUDGET else [],
        # Powerprop: its lr sweeps, runs (effective-weight checkpoints) and the equivalence study.
        powerprop_results(),
        [f"{PP_DIR}/equivalence.json"] if POWERPROP else [],


rule dvc_metrics:
    """DVC stage `metrics`: probes, every summary and versioned metric (data/probes, data/summary, data/metrics)."""
    localrule: True
    input:
        [o for o in all_outputs() if o.startswith(("data/probes/", "data/summary/", "data/metrics/"))],
