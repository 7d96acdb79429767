# rule budget_sensitivity (workflow/rules/continual.smk) -> optbias.continual.figures.budget_sensitivity
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.figures import budget_sensitivity
    from optbias.fileio import load_json

    budget_sensitivity(load_json(snakemake.input.summary), snakemake.output, snakemake.params.title)
