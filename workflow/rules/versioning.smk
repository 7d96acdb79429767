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
    """DVC stage `train`: every training run, checkpoints included (data/runs, data/sweep, data/budget, data/knobs,
    data/powerprop)."""
    localrule: True
    input:
        training_outputs(),


rule dvc_metrics:
    """DVC stage `metrics`: probes, every summary and versioned metric (data/probes, data/summary, data/metrics)."""
    localrule: True
    input:
        [o for o in all_outputs() if o.startswith(("data/probes/", "data/summary/", "data/metrics/"))],
