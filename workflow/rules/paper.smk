# The paper and the claims audit (src/optbias/paper/): the claims file(s) of paper.claims -> audit (paper/audit.md,
# data/audit.json) -> explore (the notebook, executed: paper/build/explore.{ipynb,html}) -> paper
# (paper/build/paper.html, which links to the notebook). Enabled by the config's `paper` block (paths
# relative to the repository). Every claim's rule must exist and its output must be one of that
# rule's outputs; the check runs when the DAG is built (after every rule file is included), so a
# claim pointing at a rule or file that does not exist stops the workflow with the claim's id.


rule audit:
    """Evaluate every claim of the claims file(s) (paper.claims) on its rule's output: verdicts with 95% CIs."""
    input:
        unpack(audit_inputs),
        code=code("paper/claims.py", "stats.py"),
        lock=repo_path("requirements.lock"),  # the audit page shows its SHA-256
    output:
        md="paper/audit.md",
        json="data/audit.json",
        verdicts="paper/verdicts.json",  # committed: `optbias compare` names the verdicts a new run changes
    params:
        rule_outputs=lambda w: claimed_rule_outputs(),
        dataset=DATASET_NAME,  # the page names it: the statements say MNIST, as the paper does
    message:
        "audit the claims"
    log:
        "logs/paper/audit.log",
    conda:
        ENV
    script:
        "../scripts/paper/audit.py"


rule paper:
    """Render paper/paper.md to HTML: numbers from the pipeline, figures embedded, claims linked to the audit."""
    input:
        unpack(paper_inputs),
        code=code("paper/render.py", "paper/claims.py", "data.py"),
    output:
        report("paper/build/paper.html", caption="../report/paper.rst", category="Paper"),
    params:
        config=REPORTED_CONFIG,
        datasets=lambda w: list(other_datasets()),  # their names, in the order of input.datasets
    message:
        "render {output}"
    log:
        "logs/paper/paper.log",
    conda:
        ENV
    script:
        "../scripts/paper/paper.py"


rule explore:
    """Execute the explore notebook (workflow/notebooks/explore.py) on the outputs: executed .ipynb and HTML."""
    input:
        unpack(explore_inputs),
        notebook=NOTEBOOK,
        code=code("paper/explore.py", "paper/claims.py", "continual/summary.py", "stats.py", "plotting.py"),
    output:
        ipynb="paper/build/explore.ipynb",
        html=report("paper/build/explore.html", caption="../report/explore.rst", category="Paper"),
    params:
        parameters=lambda w: explore_parameters(),
    message:
        "execute the explore notebook ({params.parameters[benchmark]}: {params.parameters[a]} vs {params.parameters[b]})"
    log:
        "logs/paper/explore.log",
    benchmark:
        "benchmarks/paper/explore.tsv"
    conda:
        ENV
    script:
        "../scripts/paper/explore.py"
