# Probes (src/optbias/probes/): what the headline runs' checkpoints hold. Representations
# (effective rank, cross-class cosine, linear probes) and weights (distance between optimizers,
# claim 9; with the noise-floor controls' checkpoints, solution distances in three measures).
# Reads checkpoints, never retrains. The probe settings (the `probes:` config block) travel as a
# param, so changing them reruns these rules and the figures below them, and nothing upstream.


rule probe:
    """Every probe on every checkpoint of one benchmark's headline runs, in one process (one torch start-up)."""
    input:
        data=DATA["data"],
        metrics=lambda w: run_metrics(w.benchmark),
        checkpoints=lambda w: run_checkpoints(w.benchmark),
    output:
        expand(PROBE, optimizer=OPTIMIZERS, seed=SEEDS, allow_missing=True),
    params:
        settings=PROBES,
    message:
        "probe every checkpoint of {wildcards.benchmark}"
    threads: PROBES["threads"]
    log:
        "logs/probes/{benchmark}.log",
    benchmark:
        "benchmarks/probes/{benchmark}.tsv"
    conda:
        ENV
    script:
        "../scripts/probes/probe.py"


rule summarize_probes:
    """Final-checkpoint probe scalars (claims 4, 5) per optimizer: mean, 95% CI and per-seed values."""
    input:
        probes=lambda w: probe_outputs(w.benchmark),
        code=code("probes/summary.py", "stats.py"),
    output:
        "data/summary/probes_{benchmark}.json",
    params:
        order=OPTIMIZERS,
    message:
        "summarize the probes of {wildcards.benchmark}"
    log:
        "logs/summarize/probes_{benchmark}.log",
    conda:
        ENV
    script:
        "../scripts/probes/summarize_probes.py"


rule weight_distance:
    """||w_a - w_b|| / ||w_0|| between the final weights of every two headline optimizers, per seed."""
    input:
        metrics=all_benchmarks(run_metrics),
        checkpoints=all_benchmarks(run_checkpoints),
        code=code("probes/weights.py", "stats.py"),
    output:
        "data/summary/weight_distance.json",
    params:
        order=OPTIMIZERS,
    message:
        "weight distances between optimizers"
    log:
        "logs/summarize/weight_distance.log",
    conda:
        ENV
    script:
        "../scripts/probes/weight_distance.py"


rule solution_distance:
    """Claim 9 with its noise floor: function (prediction disagreement), weight and representation
    distances between the final models of every two headline optimizers, per seed, and of each
    optimizer and its noise-floor control (config `noise_floor`; no floors without it)."""
    input:
        data=DATA["data"],
        metrics=all_benchmarks(lambda b: run_metrics(b) + run_metrics(b, list(CONTROLS))),
        checkpoints=all_benchmarks(lambda b: run_checkpoints(b) + run_checkpoints(b, list(CONTROLS))),
        code=code("probes/distance.py", "probes/weights.py", "probes/run.py", "probes/measures.py", "stats.py"),
    output:
        "data/summary/solution_distance.json",
    params:
        order=OPTIMIZERS,
        controls=CONTROLS,
        settings={key: PROBES[key] for key in ("probe_set_per_class", "probe_set_seed", "threads")},
    message:
        "solution distances between optimizers, with their noise floors"
    threads: PROBES["threads"]
    log:
        "logs/summarize/solution_distance.log",
    conda:
        ENV
    script:
        "../scripts/probes/solution_distance.py"


# ---- figures: rule, script and function share one name (optbias.probes.figures.<name>)


rule cosine_heatmaps:
    """Figure B of the paper: cross-class cosine similarity of class means, one heatmap per optimizer."""
    input:
        probes=probe_outputs("class_incremental"),
        code=code("probes/figures.py", "plotting.py"),
    output:
        pdf=report("figures/cross_class_cosine_class_incremental.pdf",
                   caption="../report/cross_class_cosine.rst", category="Representations"),
        png="figures/cross_class_cosine_class_incremental.png",
    params:
        order=OPTIMIZERS,
        title=f"Class-incremental {DATASET_NAME}: cosine similarity of class-mean representations",
    message:
        "figure {output.pdf}"
    log:
        "logs/figures/cross_class_cosine_class_incremental.log",
    conda:
        ENV
    script:
        "../scripts/probes/cosine_heatmaps.py"


rule effective_rank_curves:
    """Figure: effective rank of each hidden layer against tasks seen, per optimizer, every benchmark."""
    input:
        probes=all_benchmarks(probe_outputs),
        code=code("probes/figures.py", "plotting.py"),
    output:
        pdf=report("figures/effective_rank.pdf", caption="../report/effective_rank.rst", category="Representations"),
        png="figures/effective_rank.png",
    params:
        order=OPTIMIZERS,
        title="Effective rank of the hidden representations",
    message:
        "figure {output.pdf}"
    log:
        "logs/figures/effective_rank.log",
    conda:
        ENV
    script:
        "../scripts/probes/effective_rank_curves.py"


rule probe_vs_head:
    """Figure, representation forgetting: linear-probe vs head accuracy on old tasks after the last task."""
    input:
        probes=all_benchmarks(probe_outputs),
        code=code("probes/figures.py", "plotting.py"),
    output:
        pdf=report("figures/probe_vs_head_accuracy.pdf", caption="../report/probe_vs_head_accuracy.rst",
                   category="Representations"),
        png="figures/probe_vs_head_accuracy.png",
    params:
        order=OPTIMIZERS,
        title="Old tasks after the last task: linear probe vs head",
    message:
        "figure {output.pdf}"
    log:
        "logs/figures/probe_vs_head_accuracy.log",
    conda:
        ENV
    script:
        "../scripts/probes/probe_vs_head.py"


rule paper_figure:
    """Figure, the paper's class-incremental figure: final accuracy per pair next to the cosine heatmaps."""
    input:
        probes=probe_outputs("class_incremental"),
        metrics=run_metrics("class_incremental"),
        code=code("probes/figures.py", "continual/figures.py", "plotting.py"),
    output:
        pdf=report("figures/paper_figure_class_incremental.pdf", caption="../report/paper_figure.rst",
                   category="Representations"),
        png="figures/paper_figure_class_incremental.png",
    params:
        order=OPTIMIZERS,
        title=f"Class-incremental {DATASET_NAME}: forgetting (left) and class overlap of the representations (right)",
    message:
        "figure {output.pdf}"
    log:
        "logs/figures/paper_figure_class_incremental.log",
    conda:
        ENV
    script:
        "../scripts/probes/paper_figure.py"
