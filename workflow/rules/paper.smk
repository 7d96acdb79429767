# The paper and the claims audit: paper/claims.yaml -> audit (paper/audit.md, data/audit.json)
# -> paper (paper/build/paper.html). Enabled by the config's `paper` block (paths relative to the
# repository). Every claim's rule must exist and its output must be one of that rule's outputs;
# the check runs when the DAG is built (after every rule file is included), so a claim pointing at
# a rule or file that does not exist stops the workflow with the claim's id.
from optbias import claims as _claims
from optbias import paper as _paper

PAPER = config.get("paper", {})


def repo_path(path):
    """A path of the paper block: absolute, or relative to the repository (the Snakefile's folder)."""
    return path if os.path.isabs(path) else os.path.join(workflow.basedir, path)


def paper_claims():
    return _claims.load_claims(repo_path(PAPER["claims"]))


def claimed_rule_outputs():
    """rule -> output patterns, for the rules the claims name (fails on a rule that does not exist)."""
    known = {r.name: [str(o) for o in r.output] for r in workflow.rules}
    claims = paper_claims()
    _claims.check_provenance(claims, known)
    return {c["rule"]: known[c["rule"]] for c in claims}


def audit_inputs(wildcards):
    claimed_rule_outputs()  # raises ClaimError naming the claim before any job runs
    return {"claims": repo_path(PAPER["claims"]), "evidence": sorted({c["output"] for c in paper_claims()})}


def paper_inputs(wildcards):
    source = repo_path(PAPER["source"])
    variables = repo_path(PAPER["variables"])
    return {
        "source": source,
        "variables": variables,
        "audit_json": "data/audit.json",
        "audit_md": "paper/audit.md",
        "evidence": sorted(set(_paper.variable_outputs(_paper.load_variables(variables)))
                           | set(_paper.inline_outputs(open(source).read()))),
        "figures": _paper.figure_paths(open(source).read()),
    }


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
