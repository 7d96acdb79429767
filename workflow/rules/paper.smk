# The paper and the claims audit: paper/claims.yaml -> audit (paper/audit.md, data/audit.json)
# -> paper (paper/build/paper.html). Enabled by the config's `paper` block (paths relative to the
# repository). Every claim's rule must exist and its output must be one of that rule's outputs;
# the check runs when the DAG is built (after every rule file is included), so a claim pointing at
# a rule or file that does not exist stops the workflow with the claim's id.


include: "paper_helpers.smk"


rule audit:
    """Evaluate every claim of paper/claims.yaml on its rule's output: verdicts with 95% CIs."""
    input:
        unpack(audit_inputs),
    output:
        md="paper/audit.md",
        json="data/audit.json",
    params:
        rule_outputs=lambda w: quoted_json(claimed_rule_outputs()),
    log:
        "logs/paper/audit.log",
    conda:
        ENV
    shell:
        "optbias audit --claims {input.claims} --rule-outputs {params.rule_outputs} "
        "--output-md {output.md} --output-json {output.json} > {log} 2>&1"


rule paper:
    """Render paper/paper.md to HTML: numbers from the pipeline, figures embedded, claims linked to the audit."""
    input:
        unpack(paper_inputs),
    output:
        report("paper/build/paper.html", caption="../report/paper.rst", category="Paper"),
    params:
        config=quoted_json(config),
    log:
        "logs/paper/paper.log",
    conda:
        ENV
    shell:
        "optbias paper --source {input.source} --variables {input.variables} --audit-json {input.audit_json} "
        "--audit-md {input.audit_md} --config {params.config} --output {output} > {log} 2>&1"
