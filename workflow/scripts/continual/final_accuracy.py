# rule final_accuracy (workflow/rules/continual.smk) -> optbias.continual.figures.final_accuracy
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.figures import final_accuracy
    from optbias.fileio import load_jsons

    final_accuracy(load_jsons(snakemake.input.metrics), snakemake.params.order, snakemake.output, snakemake.params.title)
