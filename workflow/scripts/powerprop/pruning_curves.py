# rule pruning_curves (workflow/rules/powerprop.smk) -> optbias.powerprop.figures.pruning_curves
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.fileio import load_jsons
    from optbias.powerprop.figures import pruning_curves

    pruning_curves(load_jsons(snakemake.input.results), snakemake.params.order, snakemake.output, snakemake.params.title)
