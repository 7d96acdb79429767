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
        code=code_version("optbias.probes.run"),
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


# ---- figures: figure_rule (common.smk), one call per figure; rule, script and function share one name
# (optbias.probes.figures.<name>)


figure_rule(
    "probes", "cosine_heatmaps",
    "Figure B of the paper: cross-class cosine similarity of class means, one heatmap per optimizer.",
    figure="cross_class_cosine_class_incremental",
    inputs={"probes": probe_outputs("class_incremental")},
    caption="../report/cross_class_cosine.rst", category="Representations",
    params={"order": OPTIMIZERS,
            "title": f"Class-incremental {DATASET_NAME}: cosine similarity of class-mean representations"},
    when="class_incremental" in BENCHMARKS,
)

figure_rule(
    "probes", "effective_rank_curves",
    "Figure: effective rank of each hidden layer against tasks seen, per optimizer, every benchmark.",
    figure="effective_rank",
    inputs={"probes": all_benchmarks(probe_outputs)},
    caption="../report/effective_rank.rst", category="Representations",
    params={"order": OPTIMIZERS, "title": "Effective rank of the hidden representations"},
)

figure_rule(
    "probes", "probe_vs_head",
    "Figure, representation forgetting: linear-probe vs head accuracy on old tasks after the last task.",
    figure="probe_vs_head_accuracy",
    inputs={"probes": all_benchmarks(probe_outputs)},
    caption="../report/probe_vs_head_accuracy.rst", category="Representations",
    params={"order": OPTIMIZERS, "title": "Old tasks after the last task: linear probe vs head"},
)

figure_rule(
    "probes", "paper_figure",
    "Figure, the paper's class-incremental figure: final accuracy per pair next to the cosine heatmaps.",
    figure="paper_figure_class_incremental",
    inputs={"probes": probe_outputs("class_incremental"), "metrics": run_metrics("class_incremental")},
    more_code=["continual/figures.py"],
    caption="../report/paper_figure.rst", category="Representations",
    params={"order": OPTIMIZERS, "title": f"Class-incremental {DATASET_NAME}: forgetting (left) and class overlap "
                                          "of the representations (right)"},
    when="class_incremental" in BENCHMARKS,
)
