# Powerpropagation as an optimizer (PAPER.md example 2; claims 7 and 8): per method, choose the lr
# on held-out data, train every seed, save plain effective-weight state_dicts, measure sparsity and
# accuracy under magnitude pruning; separately, the trajectory-equivalence check.
rule powerprop_method:
    """One method: choose its lr (one run per candidate on the validation seed, held-out split), then
    train every seed at that lr: plain state_dicts, accuracy, sparsity, pruning. One process."""
    input:
        data=f"data/raw/{DATASET}.pt",
        manifest=f"data/raw/{DATASET}.pt.manifest.json",
    output:
        selected=f"{PP_DIR}/sweep/{{pp_method}}.json",
        results=f"{PP_DIR}/runs/{{pp_method}}/results.json",
        checkpoints=expand(f"{PP_DIR}/runs/{{{{pp_method}}}}/seed{{seed}}.pt", seed=PP_SEEDS),
    params:
        spec=lambda w: quoted_json(powerprop_spec(w)),
    threads: POWERPROP.get("threads", 1)
    log:
        "logs/powerprop/{pp_method}.log",
    benchmark:
        "benchmarks/powerprop/{pp_method}.tsv"
    conda:
        ENV
    shell:
        "optbias powerprop-method --spec {params.spec} --data {input.data} --selected {output.selected} "
        "--checkpoints {output.checkpoints} --output {output.results} > {log} 2>&1"


rule powerprop_summary:
    """Per method and seed: test accuracy, near-zero fraction, accuracy at each pruning level; mean and CI."""
    input:
        results=expand(f"{PP_DIR}/runs/{{pp_method}}/results.json", pp_method=PP_METHODS),
        selected=expand(f"{PP_DIR}/sweep/{{pp_method}}.json", pp_method=PP_METHODS),
    output:
        "data/summary/powerprop.json",
    params:
        order=PP_METHODS,
    log:
        "logs/powerprop/summary.log",
    conda:
        ENV
    shell:
        "optbias powerprop-summary --inputs {input.results} --selected {input.selected} "
        "--order {params.order} --output {output} > {log} 2>&1"


rule powerprop_equivalence:
    """Claim 7: gap between SGD/Adam on v and the Powerprop optimizer on w, against the lr."""
    input:
        data=f"data/raw/{DATASET}.pt",
        manifest=f"data/raw/{DATASET}.pt.manifest.json",
    output:
        f"{PP_DIR}/equivalence.json",
    params:
        spec=quoted_json({"cfg": POWERPROP.get("equivalence", {}), "model": config["model"]}),
    log:
        "logs/powerprop/equivalence.log",
    benchmark:
        "benchmarks/powerprop/equivalence.tsv"
    conda:
        ENV
    shell:
        "optbias powerprop-equivalence --spec {params.spec} --data {input.data} --output {output} > {log} 2>&1"


rule figure_powerprop_histograms:
    """Weight-magnitude histograms (log10|w|) per method."""
    input:
        results=expand(f"{PP_DIR}/runs/{{pp_method}}/results.json", pp_method=PP_METHODS),
    output:
        pdf=report("figures/powerprop_weight_magnitudes.pdf", caption="../report/powerprop_weight_magnitudes.rst",
                   category="Powerprop"),
        png="figures/powerprop_weight_magnitudes.png",
    params:
        order=PP_METHODS,
    log:
        "logs/figures/powerprop_weight_magnitudes.log",
    conda:
        ENV
    shell:
        "optbias powerprop-figure histograms --inputs {input.results} --order {params.order} --out {output} "
        "--title 'Weight magnitudes after training (one task, all digits)' > {log} 2>&1"


rule figure_powerprop_pruning:
    """Test accuracy after global magnitude pruning against the pruned fraction, per method."""
    input:
        results=expand(f"{PP_DIR}/runs/{{pp_method}}/results.json", pp_method=PP_METHODS),
    output:
        pdf=report("figures/powerprop_pruning.pdf", caption="../report/powerprop_pruning.rst", category="Powerprop"),
        png="figures/powerprop_pruning.png",
    params:
        order=PP_METHODS,
    log:
        "logs/figures/powerprop_pruning.log",
    conda:
        ENV
    shell:
        "optbias powerprop-figure pruning --inputs {input.results} --order {params.order} --out {output} "
        "--title 'Accuracy under magnitude pruning' > {log} 2>&1"
