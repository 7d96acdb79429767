# Powerpropagation as an optimizer (src/optbias/powerprop/; PAPER.md example 2, claims 7 and 8):
# per method, choose the lr on held-out data, train every seed, save plain effective-weight
# state_dicts, measure sparsity and accuracy under magnitude pruning; separately, the
# trajectory-equivalence check. Every rule is empty without a `powerprop:` config block.


rule powerprop_method:
    """One method: choose its lr (one run per candidate on the validation seed, held-out split), then
    train every seed at that lr: plain state_dicts, accuracy, sparsity, pruning. One process."""
    input:
        **DATA,
    output:
        selected=f"{PP_DIR}/sweep/{{pp_method}}.json",
        results=f"{PP_DIR}/runs/{{pp_method}}/results.json",
        checkpoints=expand(f"{PP_DIR}/runs/{{pp_method}}/seed{{seed}}.pt", seed=PP_SEEDS, allow_missing=True),
    params:
        code=code_version("optbias.powerprop.runs"),
        spec=lambda w: powerprop_spec(w.pp_method),
    message:
        f"Powerprop {{wildcards.pp_method}}: choose the lr, then {len(PP_SEEDS)} seeds"
    threads: POWERPROP.get("threads", 1)
    log:
        "logs/powerprop/{pp_method}.log",
    benchmark:
        "benchmarks/powerprop/{pp_method}.tsv"
    conda:
        ENV
    script:
        "../scripts/powerprop/powerprop_method.py"


rule powerprop_summary:
    """Per method and seed: test accuracy, near-zero fraction, accuracy at each pruning level; mean and CI."""
    input:
        results=powerprop_results(),
        selected=expand(f"{PP_DIR}/sweep/{{pp_method}}.json", pp_method=PP_METHODS),
        code=code("powerprop/summary.py", "stats.py"),
    output:
        "data/summary/powerprop.json",
    params:
        order=PP_METHODS,
    message:
        "summarize the Powerprop experiment"
    log:
        "logs/powerprop/summary.log",
    conda:
        ENV
    script:
        "../scripts/powerprop/powerprop_summary.py"


rule powerprop_equivalence:
    """Claim 7: gap between SGD/Adam on v and the Powerprop optimizer on w, against the lr."""
    input:
        **DATA,
    output:
        f"{PP_DIR}/equivalence.json",
    params:
        code=code_version("optbias.powerprop.equivalence"),
        cfg=POWERPROP.get("equivalence", {}),
        model_cfg=config["model"],
    message:
        "Powerprop trajectory equivalence"
    log:
        "logs/powerprop/equivalence.log",
    benchmark:
        "benchmarks/powerprop/equivalence.tsv"
    conda:
        ENV
    script:
        "../scripts/powerprop/powerprop_equivalence.py"


# ---- figures: figure_rule (common.smk), one call per figure; rule, script and function share one name
# (optbias.powerprop.figures.<name>)


figure_rule(
    "powerprop", "magnitude_histograms",
    "Figure: weight-magnitude histograms (log10|w|) per method.",
    figure="powerprop_weight_magnitudes",
    inputs={"results": powerprop_results()},
    caption="../report/powerprop_weight_magnitudes.rst", category="Powerprop",
    params={"order": PP_METHODS, "title": "Weight magnitudes after training (one task, all digits)"},
    when=bool(POWERPROP),
)

figure_rule(
    "powerprop", "pruning_curves",
    "Figure: test accuracy after global magnitude pruning against the pruned fraction, per method.",
    figure="powerprop_pruning",
    inputs={"results": powerprop_results()},
    caption="../report/powerprop_pruning.rst", category="Powerprop",
    params={"order": PP_METHODS, "title": "Accuracy under magnitude pruning"},
    when=bool(POWERPROP),
)
