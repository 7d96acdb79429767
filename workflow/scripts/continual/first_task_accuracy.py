# rule first_task_accuracy (workflow/rules/continual.smk) -> optbias.continual.figures.first_task_accuracy
from optbias.job import job

with job(snakemake):  # from here on, everything (imports too) goes to the rule's log
    from optbias.continual.figures import first_task_accuracy
    from optbias.fileio import load_jsons

    first_task_accuracy(load_jsons(snakemake.input.metrics), snakemake.params.order, snakemake.output, snakemake.params.title)
