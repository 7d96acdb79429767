# rule audit (workflow/rules/paper.smk) -> optbias.paper.claims.run_audit
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.paper.claims import run_audit

    run_audit(snakemake.input.claims, snakemake.params.rule_outputs, snakemake.output.md, snakemake.output.json,
              output_verdicts=snakemake.output.verdicts, lock=snakemake.input.lock,
              dataset=snakemake.params.dataset)
