# rule audit (workflow/rules/paper.smk) -> optbias.paper.claims.run_audit
from optbias.job import job
from optbias.paper.claims import run_audit

with job(snakemake):
    run_audit(snakemake.input.claims, snakemake.params.rule_outputs, snakemake.output.md, snakemake.output.json)
