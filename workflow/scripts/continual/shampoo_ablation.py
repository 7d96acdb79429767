# rule shampoo_ablation (workflow/rules/continual.smk) -> optbias.continual.figures.shampoo_ablation
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.figures import shampoo_ablation
    from optbias.fileio import load_json

    shampoo_ablation(load_json(snakemake.input.summary), snakemake.output, snakemake.params.title)
