# Probe evaluation (issue 4): reads the per-task checkpoints of the headline runs, never retrains.
# The probe settings travel as a param, so changing the `probes:` config block reruns these
# rules and the figures below them, and nothing upstream.
from optbias import probe_run as _probe_run

PROBES = _probe_run.settings(config)
PROBE_OUTPUTS = {
    b: expand("data/probes/{benchmark}/{optimizer}/seed{seed}/probes.json", benchmark=b, optimizer=OPTIMIZERS,
              seed=SEEDS)
    for b in BENCHMARKS
}
ALL_PROBE_OUTPUTS = [p for b in BENCHMARKS for p in PROBE_OUTPUTS[b]]


rule probe:
    """Every probe on every checkpoint of one benchmark's headline runs, in one process (one torch start-up)."""
    input:
        data=f"data/raw/{DATASET}.pt",
        metrics=lambda w: run_metrics(w.benchmark),
        checkpoints=lambda w: expand(f"{RUN}/checkpoints", benchmark=w.benchmark, optimizer=OPTIMIZERS, seed=SEEDS),
    output:
        expand("data/probes/{{benchmark}}/{optimizer}/seed{seed}/probes.json", optimizer=OPTIMIZERS, seed=SEEDS),
    params:
        settings=quoted_json(PROBES),
    threads: PROBES["threads"]
    log:
        "logs/probes/{benchmark}.log",
    benchmark:
        "benchmarks/probes/{benchmark}.tsv"
    conda:
        ENV
    shell:
        "optbias probe --data {input.data} --metrics {input.metrics} --checkpoints {input.checkpoints} "
        "--output {output} --settings {params.settings} > {log} 2>&1"


rule summarize_probes:
    """Final-checkpoint probe scalars (claims 4, 5) per optimizer: mean, 95% CI and per-seed values."""
    input:
        probes=lambda w: PROBE_OUTPUTS[w.benchmark],
    output:
        "data/summary/probes_{benchmark}.json",
    params:
        order=OPTIMIZERS,
    log:
        "logs/summarize/probes_{benchmark}.log",
    conda:
        ENV
    shell:
        "optbias probe-summary --probes {input.probes} --order {params.order} --output {output} > {log} 2>&1"


rule figure_cosine_heatmaps:
    """The paper's Figure B: cross-class cosine similarity of class means, one heatmap per optimizer."""
    input:
        probes=PROBE_OUTPUTS.get("class_incremental", []),
    output:
        pdf=report("figures/cross_class_cosine_class_incremental.pdf",
                   caption="../report/cross_class_cosine.rst", category="Representations"),
        png="figures/cross_class_cosine_class_incremental.png",
    params:
        order=OPTIMIZERS,
    log:
        "logs/figures/cross_class_cosine_class_incremental.log",
    conda:
        ENV
    shell:
        "optbias probe-figure cosine-heatmaps --probes {input.probes} --order {params.order} --out {output} "
        "--title 'Class-incremental MNIST: cosine similarity of class-mean representations' > {log} 2>&1"


rule figure_effective_rank:
    """Effective rank of each hidden layer against tasks seen, per optimizer, every benchmark."""
    input:
        probes=ALL_PROBE_OUTPUTS,
    output:
        pdf=report("figures/effective_rank.pdf", caption="../report/effective_rank.rst", category="Representations"),
        png="figures/effective_rank.png",
    params:
        order=OPTIMIZERS,
    log:
        "logs/figures/effective_rank.log",
    conda:
        ENV
    shell:
        "optbias probe-figure effective-rank --probes {input.probes} --order {params.order} --out {output} "
        "--title 'Effective rank of the hidden representations' > {log} 2>&1"


rule figure_probe_vs_head:
    """Representation forgetting: linear-probe vs head accuracy on old tasks after the last task."""
    input:
        probes=ALL_PROBE_OUTPUTS,
    output:
        pdf=report("figures/probe_vs_head_accuracy.pdf", caption="../report/probe_vs_head_accuracy.rst",
                   category="Representations"),
        png="figures/probe_vs_head_accuracy.png",
    params:
        order=OPTIMIZERS,
    log:
        "logs/figures/probe_vs_head_accuracy.log",
    conda:
        ENV
    shell:
        "optbias probe-figure probe-vs-head --probes {input.probes} --order {params.order} --out {output} "
        "--title 'Old tasks after the last task: linear probe vs head' > {log} 2>&1"


rule figure_paper_class_incremental:
    """The paper's class-incremental figure: final accuracy per pair next to the cosine heatmaps."""
    input:
        probes=PROBE_OUTPUTS.get("class_incremental", []),
        metrics=run_metrics("class_incremental"),
    output:
        pdf=report("figures/paper_figure_class_incremental.pdf", caption="../report/paper_figure.rst",
                   category="Representations"),
        png="figures/paper_figure_class_incremental.png",
    params:
        order=OPTIMIZERS,
    log:
        "logs/figures/paper_figure_class_incremental.log",
    conda:
        ENV
    shell:
        "optbias probe-figure paper-figure --probes {input.probes} --metrics {input.metrics} "
        "--order {params.order} --out {output} "
        "--title 'Class-incremental MNIST: forgetting (left) and class overlap of the representations (right)' "
        "> {log} 2>&1"
