# Claim 9 at the level of weights (paper/claims.yaml, C9d): how far apart the headline optimizers'
# final weights are, from the same initialization. Reads checkpoints, never retrains.


rule weight_distance:
    """||w_a - w_b|| / ||w_0|| between the final weights of every two headline optimizers, per seed."""
    input:
        metrics=[m for b in BENCHMARKS for m in run_metrics(b)],
        checkpoints=[c for b in BENCHMARKS for c in expand(f"{RUN}/checkpoints", benchmark=b, optimizer=OPTIMIZERS,
                                                           seed=SEEDS)],
    output:
        "data/summary/weight_distance.json",
    params:
        order=OPTIMIZERS,
    log:
        "logs/summarize/weight_distance.log",
    conda:
        ENV
    shell:
        "optbias weight-distance --metrics {input.metrics} --checkpoints {input.checkpoints} "
        "--order {params.order} --output {output} > {log} 2>&1"
