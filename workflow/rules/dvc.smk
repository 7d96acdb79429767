# Versioning with DVC (dvc.yaml, docs/dvc.md). Snakemake owns execution: every DVC stage runs
# `snakemake <one target rule below>`, and the stages' outputs are whole directories that do not
# overlap. tests/test_dvc.py checks that every output of this DAG lies under one DVC output.


rule track:
    """The small files DVC versions in git: headline metrics (dvc metrics) and curves (dvc plots)."""
    input:
        summaries=expand("data/summary/{benchmark}.json", benchmark=BENCHMARKS),
        metrics=[m for b in BENCHMARKS for m in run_metrics(b)],
    output:
        headline="data/metrics/headline.json",
        curves=expand("data/metrics/curves/{benchmark}/{optimizer}.csv", benchmark=BENCHMARKS, optimizer=OPTIMIZERS),
    log:
        "logs/track.log",
    conda:
        ENV
    shell:
        "optbias track --summaries {input.summaries} --metrics {input.metrics} "
        "--headline {output.headline} --curves data/metrics/curves > {log} 2>&1"


rule dvc_data:
    """DVC stage `data`: the frozen dataset (data/raw)."""
    localrule: True
    input:
        f"data/raw/{DATASET}.pt",
        f"data/raw/{DATASET}.pt.manifest.json",


rule dvc_train:
    """DVC stage `train`: every training run, checkpoints included (data/runs, data/sweep, data/powerprop)."""
    localrule: True
    input:
        [m for b in BENCHMARKS for m in run_metrics(b) + ablation_metrics(b)],
        sweep_metrics(),
        ["data/sweep/selected.json"] if SWEEP else [],
        # Powerprop: its lr sweeps, runs (effective-weight checkpoints) and the equivalence study.
        expand(f"{PP_DIR}/runs/{{pp_method}}/results.json", pp_method=PP_METHODS),
        [f"{PP_DIR}/equivalence.json"] if POWERPROP else [],


rule dvc_metrics:
    """DVC stage `metrics`: probes, every summary and versioned metric (data/probes, data/summary, data/metrics)."""
    localrule: True
    input:
        [o for o in all_outputs() if o.startswith(("data/probes/", "data/summary/", "data/metrics/"))],
