# rule first_task_accuracy (workflow/rules/continual.smk) -> optbias.continual.figures.first_task_accuracy
from optbias.continual.figures import first_task_accuracy
from optbias.fileio import load_jsons
from optbias.job import job

with job(snakemake):
    first_task_accuracy(load_jsons(snakemake.input.metrics), snakemake.params.order, snakemake.output, snakemake.params.title)
