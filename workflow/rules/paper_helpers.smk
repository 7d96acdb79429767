# Helpers of workflow/rules/paper.smk (kept apart: snakemake --lint wants rules and functions apart).
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
